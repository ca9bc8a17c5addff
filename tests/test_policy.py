"""The one access policy as one table: role x action x object -> allowed
or refused. First against the policy object (what every route asks), then
against the real server: every live message each role may not send is
refused there with ``forbidden``, and every one it may send gets past the
policy (whatever else its route then answers)."""

from __future__ import annotations

import pytest

from server.access.policy import (
    MAY,
    AccessPolicy,
    Action,
    Item,
    Reader,
    Visibility,
)
from server.core.roles import Role
from server.media.policy import RECORDER_ROLE, ProducerInfo, Source
from testkit.server import LiveServer

#: who is asking, by the names the tables below use
READERS: dict[str, Reader] = {
    "teacher": Reader(Role.TEACHER, "i-t", "Ms Rivera"),
    "coach": Reader(Role.COACH, "i-c", "Dr Chen"),
    "observer": Reader(Role.OBSERVER, "i-o", "Visitor"),
    "member": Reader(Role.MEMBER, "i-m", "Mr Okafor"),
    "owner": Reader(Role.MEMBER, "i-w", "Ms Rivera", owner=True),
    "admin": Reader.admin(),
}
WHO = tuple(READERS)
Y, N = True, False

#: action -> allowed for teacher, coach, observer, member, owner, admin
DOES: dict[Action, tuple[bool, ...]] = {
    Action.WHISPER: (N, Y, N, N, N, N),
    Action.SEND_CUE: (N, Y, N, N, N, N),
    Action.ACK_CUE: (Y, N, N, N, N, N),
    Action.TALLY: (N, Y, N, N, N, N),
    Action.NOTE: (N, Y, N, N, N, N),
    Action.DECIDE_RECORDING: (Y, N, N, N, Y, N),
    Action.END_SESSION: (Y, N, N, N, Y, N),
    Action.DRIVE_PLAYBACK: (N, N, N, Y, Y, N),
    Action.COMMENT: (Y, Y, N, Y, Y, Y),
    Action.MAKE_CLIP: (Y, Y, N, N, N, Y),
    Action.START_DEBRIEF: (Y, N, N, N, N, Y),
    Action.DELETE_RECORDING: (Y, N, N, N, N, Y),
    Action.READ_AUDIT: (Y, N, N, N, N, Y),
    Action.READ_RAW: (N, N, N, N, N, Y),
    Action.CAMERA_TOKENS: (Y, N, N, N, N, Y),
    Action.RECOMPUTE_MEASURES: (Y, Y, N, N, N, Y),
}

#: item -> read afterwards by teacher, coach, observer, member, owner, admin
READS: dict[Item, tuple[bool, ...]] = {
    Item.CLASSROOM: (Y, Y, Y, Y, Y, Y),
    Item.WHISPER: (Y, Y, N, N, N, Y),
    Item.MEMBER_MEDIA: (N, N, N, Y, Y, Y),
    Item.CUE: (Y, Y, N, Y, Y, Y),
    Item.CUE_STATE: (Y, Y, N, Y, Y, Y),
    Item.TALLY: (Y, Y, N, Y, Y, Y),
    Item.PRESENCE: (Y, Y, N, N, N, Y),
    Item.RECORDING: (Y, Y, Y, Y, Y, Y),
    Item.WHISPER_STATE: (Y, Y, N, N, N, Y),
    Item.MEASURES: (Y, Y, N, N, N, Y),
    Item.RAW: (N, N, N, N, N, Y),
}

LIVE_WHO = ("teacher", "coach", "observer", "member", "camera", RECORDER_ROLE)
#: item -> received live by teacher, coach, observer, member, a WHIP camera, the Recorder
RECEIVES: dict[Item, tuple[bool, ...]] = {
    Item.CLASSROOM: (N, Y, Y, N, N, Y),
    Item.WHISPER: (Y, N, N, N, N, Y),
    Item.MEMBER_MEDIA: (N, N, N, Y, N, Y),
    Item.CUE: (Y, N, N, N, N, N),
    Item.CUE_STATE: (N, Y, N, N, N, N),
    Item.TALLY: (N, Y, N, N, N, N),
    Item.PRESENCE: (Y, Y, Y, Y, N, N),
    Item.RECORDING: (Y, Y, Y, Y, N, N),
    Item.WHISPER_STATE: (Y, Y, N, N, N, N),
    Item.MEASURES: (N, N, N, N, N, N),
    Item.RAW: (N, N, N, N, N, N),
}

PRODUCE_WHO = ("teacher", "coach", "observer", "member", "camera")
#: source -> published by teacher, coach, observer, member, a WHIP camera
PUBLISHES: dict[Source, tuple[bool, ...]] = {
    Source.CAMERA: (Y, N, N, Y, Y),
    Source.MIC: (Y, N, N, Y, Y),
    Source.SCREEN: (Y, N, N, Y, N),
    Source.WHISPER: (N, Y, N, N, N),
}

#: a note or comment of each visibility, written by the coach: read by ...
AUTHORED: dict[Visibility, tuple[bool, ...]] = {
    Visibility.PRIVATE: (N, Y, N, N, N, Y),
    Visibility.TEAM: (Y, Y, N, Y, Y, Y),
    Visibility.EVERYONE: (Y, Y, Y, Y, Y, Y),
}

MANIFEST = {
    "tracks": [
        {"file": "01-camera-p1.webm", "source": "camera", "role": "teacher"},
        {"file": "02-mic-p1.webm", "source": "mic", "role": "teacher"},
        {"file": "03-whisper-p2.webm", "source": "whisper", "role": "coach"},
        {"file": "04-camera-p3.webm", "source": "camera", "role": "member"},
    ],
    "review": {"classroom": "classroom.webm", "thumbnail": "thumbnail.jpg", "cameras": []},
}
#: file -> fetched by teacher, coach, observer, member, owner, admin
FETCHES: dict[str, tuple[bool, ...]] = {
    "01-camera-p1.webm": (Y, Y, Y, Y, Y, Y),
    "02-mic-p1.webm": (Y, Y, Y, Y, Y, Y),
    "classroom.webm": (Y, Y, Y, Y, Y, Y),
    "thumbnail.jpg": (Y, Y, Y, Y, Y, Y),
    "clip-0123456789ab.webm": (Y, Y, Y, Y, Y, Y),
    "03-whisper-p2.webm": (Y, Y, N, N, N, Y),
    "04-camera-p3.webm": (N, N, N, Y, Y, Y),
    "events.jsonl": (N, N, N, N, N, Y),
    "manifest.json": (N, N, N, N, N, Y),
    "tracks.jsonl": (N, N, N, N, N, Y),
    "audit.jsonl": (N, N, N, N, N, N),
}

policy = AccessPolicy()


def test_every_action_is_in_the_table() -> None:
    assert set(DOES) == set(Action) == set(MAY)
    assert set(READS) == set(Item) - {Item.NOTE, Item.COMMENT}


@pytest.mark.parametrize("action", list(Action))
def test_who_may_do_what(action: Action) -> None:
    got = tuple(policy.may(READERS[w], action) for w in WHO)
    assert got == DOES[action], dict(zip(WHO, got, strict=True))


@pytest.mark.parametrize("item", list(READS))
def test_who_reads_what_afterwards(item: Item) -> None:
    got = tuple(policy.can_read(READERS[w], item) for w in WHO)
    assert got == READS[item], dict(zip(WHO, got, strict=True))


@pytest.mark.parametrize("item", list(RECEIVES))
def test_who_receives_what_live(item: Item) -> None:
    got = tuple(policy.receives(w, item) for w in LIVE_WHO)
    assert got == RECEIVES[item], dict(zip(LIVE_WHO, got, strict=True))


@pytest.mark.parametrize("source", list(PUBLISHES))
def test_who_publishes_what(source: Source) -> None:
    got = tuple(policy.can_produce(w, source) for w in PRODUCE_WHO)
    assert got == PUBLISHES[source], dict(zip(PRODUCE_WHO, got, strict=True))


def test_a_room_camera_is_the_classroom_and_receives_nothing() -> None:
    """A WHIP device's camera and mic reach whoever gets the teacher's
    (coaches, observers, the Recorder); the device itself consumes nothing."""
    room = ProducerInfo("t-9", "p-cam", "camera", Source.CAMERA, "video")
    teacher_cam = ProducerInfo("t-1", "p-t", "teacher", Source.CAMERA, "video")
    whisper = ProducerInfo("t-2", "p-c", "coach", Source.WHISPER, "audio", gated=True)
    for role in ("teacher", "coach", "observer", "member", RECORDER_ROLE):
        assert policy.can_consume(room, "p-x", role) == policy.can_consume(
            teacher_cam, "p-x", role
        ), role
    for producer in (room, teacher_cam, whisper):
        assert not policy.can_consume(producer, "p-cam2", "camera")
    assert not any(policy.may(Reader(Role.CAMERA, "c-1"), action) for action in Action)


@pytest.mark.parametrize("visibility", list(Visibility))
def test_notes_and_comments_by_visibility(visibility: Visibility) -> None:
    got = tuple(
        policy.can_read_authored(READERS[w], author_invite="i-c", visibility=visibility)
        for w in WHO
    )
    assert got == AUTHORED[visibility], dict(zip(WHO, got, strict=True))


@pytest.mark.parametrize("name", list(FETCHES))
def test_who_fetches_which_file(name: str) -> None:
    got = tuple(policy.may_fetch(READERS[w], MANIFEST, name) for w in WHO)
    assert got == FETCHES[name], dict(zip(WHO, got, strict=True))


def test_whispers_are_read_afterwards_only_by_who_knew_of_them_live() -> None:
    """A whisper is read afterwards only by roles that heard it or saw it
    being given live (the teacher, the coaches), never by observers or
    debrief members."""
    for i, who in enumerate(("teacher", "coach", "observer", "member")):
        knew = RECEIVES[Item.WHISPER][i] or RECEIVES[Item.WHISPER_STATE][i]
        assert READS[Item.WHISPER][i] == knew, who


def test_consumers_are_asked_before_they_exist() -> None:
    camera = ProducerInfo("t-1", "p-t", "teacher", Source.CAMERA, "video")
    whisper = ProducerInfo("t-2", "p-c", "coach", Source.WHISPER, "audio", gated=True)
    assert policy.can_consume(camera, "p-c", "coach")
    assert not policy.can_consume(camera, "p-t", "teacher")  # never one's own
    assert policy.can_consume(whisper, "p-t", "teacher")
    assert policy.can_consume(whisper, "rec", RECORDER_ROLE)
    for role in ("coach", "observer", "member"):
        assert not policy.can_consume(whisper, "p-x", role)


def test_pages_learn_their_buttons_from_permissions() -> None:
    for who, reader in READERS.items():
        perms = policy.permissions(reader)
        assert perms["clip"] == policy.may(reader, Action.MAKE_CLIP), who
        assert perms["delete"] == policy.may(reader, Action.DELETE_RECORDING), who
        assert perms["whisper"] == policy.may(reader, Action.WHISPER), who
        assert perms["decideRecording"] == policy.may(reader, Action.DECIDE_RECORDING), who


#: live messages and the action each needs (payloads that pass their schema)
MESSAGES: dict[str, tuple[Action, object]] = {
    "whisper-start": (Action.WHISPER, None),
    "whisper-stop": (Action.WHISPER, None),
    "cue": (Action.SEND_CUE, {"text": "Wait time"}),
    "cue-ack": (Action.ACK_CUE, {"cueId": "c-none"}),
    "tally": (Action.TALLY, {"category": "BSP"}),
    "tally-undo": (Action.TALLY, None),
    "note": (Action.NOTE, {"text": "a note"}),
    "note-share": (Action.NOTE, {"noteId": "n-none", "visibility": "team"}),
    "recording-pause": (Action.DECIDE_RECORDING, None),
    "recording-resume": (Action.DECIDE_RECORDING, None),
    "recording-plan": (Action.DECIDE_RECORDING, {"record": True}),
    "playback-drive": (Action.DRIVE_PLAYBACK, None),
}


@pytest.mark.integration
async def test_the_signaling_routes_ask_the_same_table(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    people = {role: live_server.participant(session.id, role) for role in ("teacher", "coach")}
    people["observer"] = live_server.participant(session.id, "observer")
    try:
        for p in people.values():
            await p.join()
        for event, (action, payload) in MESSAGES.items():
            for role, p in people.items():
                reply = await p.call(event, payload)
                refused = not reply["ok"] and reply["error"]["code"] == "forbidden"
                allowed = DOES[action][WHO.index(role)]
                assert refused != allowed, (event, role, reply)
        # ending is last: the teacher's end-session ends it for everyone
        for role in ("coach", "observer"):
            reply = await people[role].call("end-session")
            assert reply["error"]["code"] == "forbidden", (role, reply)
        assert (await people["teacher"].call("end-session"))["ok"]
    finally:
        for p in people.values():
            await p.close()

