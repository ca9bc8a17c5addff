"""Whispers reach the teacher and no one else, only while the coach holds
push-to-talk; cues are delivered, acknowledged and survive a teacher
reconnect; tallies from two coaches add up on the session clock."""

from __future__ import annotations

import asyncio

import pytest

from server.media.policy import Source
from testkit.peers import PatternVideoTrack, ToneTrack, wait_for
from testkit.server import LiveServer

pytestmark = pytest.mark.integration

WHISPER_HZ = 1000.0


def whisper_consumers(server: LiveServer, session_id: str) -> dict[str, int]:
    """participant id -> packets forwarded to it, over all whisper producers."""
    live = server.manager.get(session_id)
    assert live is not None
    out: dict[str, int] = {}
    for producer in live.router.producers.values():
        if producer.info.source == Source.WHISPER:
            for c in producer.consumers.values():
                out[c.participant_id] = out.get(c.participant_id, 0) + c.packets_sent
    return out


async def test_whisper_reaches_only_the_teacher_and_only_while_held(
    live_server: LiveServer,
) -> None:
    session = await live_server.create_session()
    teacher = live_server.participant(session.id, "teacher")
    coach = live_server.participant(session.id, "coach")
    other_coach = live_server.participant(session.id, "coach")
    observer = live_server.participant(session.id, "observer")
    people = (teacher, coach, other_coach, observer)
    try:
        # the coach publishes a whisper before the teacher is even there
        await coach.join()
        whisper = await coach.publish(ToneTrack(WHISPER_HZ), "whisper")
        await wait_for(lambda: coach.published(whisper))
        await observer.join()
        await teacher.join()
        await teacher.publish(PatternVideoTrack(), "camera")
        await other_coach.join()
        await wait_for(lambda: teacher.tracks(producerId=whisper) != [])
        heard = teacher.tracks(producerId=whisper)[0]

        live = live_server.manager.get(session.id)
        assert live is not None
        producer = live.router.producers[whisper]

        # released: packets reach the server and go nowhere
        await wait_for(lambda: producer.packets_gated > 50)
        assert sum(whisper_consumers(live_server, session.id).values()) == 0
        assert heard.frames == 0

        # held: the teacher hears the tone
        assert (await coach.call("whisper-start"))["ok"]
        await wait_for(lambda: heard.frames > 25 and heard.tone_hz > 0, timeout=10)
        assert abs(heard.tone_hz - WHISPER_HZ) < 30
        await wait_for(lambda: teacher.got("whisper-state") != [])
        state = teacher.got("whisper-state")[-1]
        assert [w["participantId"] for w in state["whispering"]] == [coach.joined["participantId"]]
        assert other_coach.got("whisper-state")[-1] == state
        assert observer.got("whisper-state") == []

        # released again: the server forwards nothing more
        assert (await coach.call("whisper-stop"))["ok"]
        await asyncio.sleep(0.1)
        sent_after_release = sum(whisper_consumers(live_server, session.id).values())
        gated_after_release = producer.packets_gated
        await wait_for(lambda: producer.packets_gated > gated_after_release + 25)
        assert sum(whisper_consumers(live_server, session.id).values()) == sent_after_release

        # only the teacher (and the Recorder) ever had a whisper consumer
        assert set(whisper_consumers(live_server, session.id)) == {
            teacher.joined["participantId"],
            "recorder",
        }
        for p in (other_coach, observer, coach):
            assert p.tracks(source="whisper") == []
        types = [e["type"] for e in live.events]
        assert types.index("whisper-start") < types.index("whisper-stop")
    finally:
        for p in people:
            await p.close()


async def test_whisper_routing_holds_across_leaves_and_rejoins(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    coach = live_server.participant(session.id, "coach")
    late_observer = live_server.participant(session.id, "observer")
    teachers = [live_server.participant(session.id, "teacher") for _ in range(2)]
    try:
        await coach.join()
        whisper = await coach.publish(ToneTrack(WHISPER_HZ), "whisper")
        await teachers[0].join()
        await wait_for(lambda: teachers[0].tracks(producerId=whisper) != [])
        assert (await coach.call("whisper-start"))["ok"]
        await wait_for(lambda: teachers[0].tracks(producerId=whisper)[0].frames > 10)
        # the teacher drops; a teacher rejoins; an observer arrives mid-whisper
        await teachers[0].close()
        await late_observer.join()
        await teachers[1].join()
        await wait_for(lambda: teachers[1].tracks(producerId=whisper) != [])
        await wait_for(lambda: teachers[1].tracks(producerId=whisper)[0].frames > 10)
        consumers = whisper_consumers(live_server, session.id)
        # (no Recorder: the teacher never went live, so nothing is recorded)
        assert set(consumers) == {teachers[1].joined["participantId"]}
        assert late_observer.tracks(source="whisper") == []
    finally:
        for p in (coach, late_observer, *teachers):
            await p.close()


async def test_single_whisper_setting_is_first_come_first_served(live_server: LiveServer) -> None:
    session = await live_server.create_session(whisper_single=True)
    a = live_server.participant(session.id, "coach")
    b = live_server.participant(session.id, "coach")
    try:
        for c in (a, b):
            await c.join()
            pid = await c.publish(ToneTrack(), "whisper")
            await wait_for(lambda c=c, pid=pid: c.published(pid))  # type: ignore[misc]
        assert (await a.call("whisper-start"))["ok"]
        busy = await b.call("whisper-start")
        assert busy["error"]["code"] == "whisper_busy"
        assert (await a.call("whisper-stop"))["ok"]
        assert (await b.call("whisper-start"))["ok"]
    finally:
        await a.close()
        await b.close()


async def test_cues_are_delivered_acknowledged_and_survive_a_reconnect(
    live_server: LiveServer,
) -> None:
    session = await live_server.create_session()
    teacher = live_server.participant(session.id, "teacher")
    coach = live_server.participant(session.id, "coach")
    observer = live_server.participant(session.id, "observer")
    returning = live_server.participant(session.id, "teacher")
    try:
        await teacher.join()
        await coach.join()
        await observer.join()
        prompts = coach.joined["coaching"]["prompts"]
        assert "Wait time" in prompts

        sent = await coach.call("cue", {"promptIndex": prompts.index("Wait time"), "tone": True})
        assert sent["ok"] and sent["cue"]["state"] == "sent"
        cue_id = sent["cue"]["id"]
        await wait_for(lambda: teacher.got("cue", id=cue_id) != [])
        assert teacher.got("cue", id=cue_id)[0]["text"] == "Wait time"
        await wait_for(lambda: coach.got("cue-state", id=cue_id, state="delivered") != [])
        ack = await teacher.call("cue-ack", {"cueId": cue_id})
        assert ack["ok"]
        await wait_for(lambda: coach.got("cue-state", id=cue_id, state="acknowledged") != [])
        final = coach.got("cue-state", id=cue_id, state="acknowledged")[0]
        assert final["sent_ms"] <= final["delivered_ms"] <= final["acknowledged_ms"]

        # the teacher's network drops; a cue sent meanwhile waits for their return
        await teacher.close()
        await wait_for(lambda: len(live_server.manager.get(session.id).members("teacher")) == 0)  # type: ignore[union-attr]
        queued = await coach.call("cue", {"text": "Praise that effort specifically"})
        assert queued["cue"]["state"] == "sent"
        await returning.join()
        await wait_for(lambda: returning.got("cue", id=queued["cue"]["id"]) != [])
        await wait_for(
            lambda: coach.got("cue-state", id=queued["cue"]["id"], state="delivered") != []
        )

        # wrong roles are refused and change nothing
        for p in (returning, observer):
            refused = await p.call("cue", {"text": "hi"})
            assert refused["error"]["code"] == "forbidden"
        assert (await coach.call("cue-ack", {"cueId": cue_id}))["error"]["code"] == "forbidden"
        assert observer.got("cue") == [] and observer.got("cue-state") == []
        live = live_server.manager.get(session.id)
        assert live is not None and len(live.cues.cues) == 2
    finally:
        for p in (teacher, coach, observer, returning):
            await p.close()


async def test_tallies_from_two_coaches_add_up_in_the_event_log(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    a = live_server.participant(session.id, "coach")
    b = live_server.participant(session.id, "coach")
    teacher = live_server.participant(session.id, "teacher")
    try:
        for p in (teacher, a, b):
            await p.join()
        for _ in range(3):
            assert (await a.call("tally", {"category": "OTR"}))["ok"]
        for _ in range(2):
            assert (await b.call("tally", {"category": "OTR"}))["ok"]
        assert (await b.call("tally", {"category": "BSP"}))["ok"]
        undo = await b.call("tally-undo")
        assert undo["counts"]["BSP"] == 0 and undo["counts"]["OTR"] == 5
        await wait_for(lambda: a.got("tally-counts") and a.got("tally-counts")[-1]["last"]["undo"])
        assert a.got("tally-counts")[-1]["counts"]["OTR"] == 5
        assert b.got("tally-counts")[-1]["counts"] == a.got("tally-counts")[-1]["counts"]
        assert teacher.got("tally-counts") == []  # counts are the coaches' tool
        bad = await a.call("tally", {"category": "Juggling"})
        assert bad["error"]["code"] == "unknown_category"
        assert (await teacher.call("tally", {"category": "OTR"}))["error"]["code"] == "forbidden"

        # a note is its author's alone until shared; shared with the team, the
        # other coach gets it live (the teacher's classroom screen never does)
        note = await a.call("note", {"text": "Great wait time after the fractions question"})
        assert note["ok"] and note["note"]["visibility"] == "private"
        assert a.got("note") != [] and b.got("note") == []
        assert (await a.call("note", {"text": "   "}))["ok"] is False
        theirs = await b.call("note-share", {"noteId": note["note"]["id"], "visibility": "team"})
        assert theirs["error"]["code"] == "forbidden"
        shared = await a.call("note-share", {"noteId": note["note"]["id"], "visibility": "team"})
        assert shared["ok"] and shared["note"]["visibility"] == "team"
        await wait_for(lambda: b.got("note") != [])
        assert b.got("note")[-1]["text"].startswith("Great wait time")
        assert teacher.got("note") == []

        live = live_server.manager.get(session.id)
        assert live is not None
        taps = [e for e in live.events if e["type"] == "tally"]
        assert len(taps) == 6
        assert [e["t"] for e in taps] == sorted(e["t"] for e in taps)
        assert sum(1 for e in live.events if e["type"] == "tally-undo") == 1
        assert any(e["type"] == "note" for e in live.events)
    finally:
        for p in (a, b, teacher):
            await p.close()
