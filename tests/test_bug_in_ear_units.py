"""Bug-in-ear logic against a fake room (no server, no media, no sleeps):
push-to-talk gating, cue delivery and acknowledgement, tallies, notes, and
who is told what, by the real access policy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from server.access.policy import AccessPolicy, Item, Visibility
from server.bug_in_ear.cues import CueBook, CueState
from server.bug_in_ear.errors import (
    EmptyNote,
    NothingToUndo,
    NoWhisperTrack,
    UnknownCategory,
    UnknownCue,
    UnknownNote,
    WhisperBusy,
)
from server.bug_in_ear.notes import Notes
from server.bug_in_ear.push_to_talk import PushToTalk
from server.bug_in_ear.tallies import Tallies
from server.core.errors import Forbidden


class FakeRoom:
    """The ``Room`` Protocol over a dict of participants (id -> role,
    invite, name), a settable clock, and logs of what was sent."""

    def __init__(self, **people: tuple[str, str]) -> None:
        self.policy = AccessPolicy()
        self.people = {pid: (role, f"i-{pid}", name) for pid, (role, name) in people.items()}
        self.clock_ms = 0
        self.events: list[dict[str, Any]] = []
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.delivered: list[tuple[str, str]] = []
        #: participants whose page acknowledges a delivery
        self.answers: set[str] = set(people)
        self.tasks: list[asyncio.Task[Any]] = []

    def now_ms(self) -> int:
        return self.clock_ms

    def log_event(self, event_type: str, **data: Any) -> dict[str, Any]:
        event = {"t": self.clock_ms, "type": event_type, **data}
        self.events.append(event)
        return event

    def audience(self, item: Item) -> list[str]:
        return [p for p, (role, _, _) in self.people.items() if self.policy.receives(role, item)]

    def note_audience(self, author_invite: str, visibility: Visibility) -> list[str]:
        return [
            p
            for p, (role, invite, _) in self.people.items()
            if self.policy.receives_note(
                role, is_author=invite == author_invite, visibility=visibility
            )
        ]

    def invite_of(self, participant_id: str) -> str:
        return self.people[participant_id][1]

    def name_of(self, participant_id: str) -> str:
        return self.people[participant_id][2]

    async def send(self, participant_ids: list[str], event: str, payload: dict[str, Any]) -> None:
        self.sent.extend((pid, event, payload) for pid in participant_ids)

    async def deliver(
        self, participant_id: str, event: str, payload: dict[str, Any], timeout_s: float
    ) -> bool:
        self.delivered.append((participant_id, event))
        return participant_id in self.answers

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.tasks.append(asyncio.ensure_future(coro))

    async def settle(self) -> None:
        while self.tasks:
            await self.tasks.pop(0)

    def to(self, event: str) -> list[str]:
        return [pid for pid, e, _ in self.sent if e == event]


class FakeWhisper:
    """A whisper Producer as push-to-talk sees it: paused or not, closable."""

    def __init__(self, coach: str) -> None:
        self.id = f"t-{coach}"
        self.info = type("Info", (), {"participant_id": coach})()
        self.closed = False
        self.paused = True
        self._on_close: list[Callable[[Any], None]] = []

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def on_close(self, callback: Callable[[Any], None]) -> None:
        self._on_close.append(callback)

    def close(self) -> None:
        self.closed = True
        for callback in self._on_close:
            callback(self)


def lesson() -> FakeRoom:
    return FakeRoom(
        t=("teacher", "Ms Rivera"),
        c1=("coach", "Dr Chen"),
        c2=("coach", "Mr Okafor"),
        o=("observer", "Visitor"),
    )


async def test_a_whisper_flows_only_while_held_and_the_state_reaches_teacher_and_coaches() -> None:
    room = lesson()
    ptt = PushToTalk(room, single_whisper=False)  # type: ignore[arg-type]
    with pytest.raises(NoWhisperTrack):
        await ptt.start("c1")
    whisper = FakeWhisper("c1")
    ptt.add_track(whisper)  # type: ignore[arg-type]
    assert whisper.paused
    room.clock_ms = 1000
    await ptt.start("c1")
    assert not whisper.paused and ptt.talking == ["c1"]
    assert sorted(room.to("whisper-state")) == ["c1", "c2", "t"]  # never the observer
    room.sent.clear()
    room.clock_ms = 3500
    await ptt.stop("c1")
    assert whisper.paused and ptt.talking == []
    stop = room.events[-1]
    assert stop["type"] == "whisper-stop" and stop["duration_ms"] == 2500
    assert "o" not in room.to("whisper-state")


async def test_one_whisper_at_a_time_when_the_lesson_asks() -> None:
    room = lesson()
    ptt = PushToTalk(room, single_whisper=True)  # type: ignore[arg-type]
    first, second = FakeWhisper("c1"), FakeWhisper("c2")
    ptt.add_track(first)  # type: ignore[arg-type]
    ptt.add_track(second)  # type: ignore[arg-type]
    await ptt.start("c1")
    with pytest.raises(WhisperBusy):
        await ptt.start("c2")
    assert second.paused
    await ptt.stop("c1")
    await ptt.start("c2")
    assert not second.paused


async def test_a_closed_whisper_track_stops_the_whisper() -> None:
    room = lesson()
    ptt = PushToTalk(room, single_whisper=False)  # type: ignore[arg-type]
    whisper = FakeWhisper("c1")
    ptt.add_track(whisper)  # type: ignore[arg-type]
    await ptt.start("c1")
    whisper.close()
    await room.settle()
    assert ptt.talking == []
    assert room.events[-1]["type"] == "whisper-stop"
    assert room.events[-1]["reason"] == "track closed"


async def test_a_cue_goes_to_the_teacher_and_its_state_to_the_coaches() -> None:
    room = lesson()
    cues = CueBook(room, ("Wait time", "Praise"))  # type: ignore[arg-type]
    room.clock_ms = 2000
    cue = await cues.send("c1", text=None, prompt_index=1, icon=None, color=None, tone=False)
    assert cue.text == "Praise" and cue.by_name == "Dr Chen"
    await room.settle()
    assert room.delivered == [("t", "cue")]  # the teacher only
    assert cue.state == CueState.DELIVERED
    assert sorted(room.to("cue-state")) == ["c1", "c2"]
    room.clock_ms = 2600
    acked = await cues.acknowledge("t", cue.id)
    assert acked.state == CueState.ACKNOWLEDGED and acked.acknowledged_ms == 2600
    assert [e["type"] for e in room.events] == ["cue", "cue-delivered", "cue-ack"]
    with pytest.raises(UnknownCue):
        await cues.acknowledge("t", "q404")
    with pytest.raises(UnknownCue):
        await cues.send("c1", text=None, prompt_index=7, icon=None, color=None, tone=False)
    with pytest.raises(UnknownCue):
        await cues.send("c1", text="  ", prompt_index=None, icon=None, color=None, tone=False)


async def test_an_undelivered_cue_waits_for_the_teacher_to_rejoin() -> None:
    room = lesson()
    room.answers.discard("t")  # the teacher's page is gone
    cues = CueBook(room, ())  # type: ignore[arg-type]
    cue = await cues.send(
        "c1", text="Proximity", prompt_index=None, icon=None, color=None, tone=True
    )
    await room.settle()
    assert cue.state == CueState.SENT
    room.answers.add("t")
    cues.redeliver("t")
    await room.settle()
    assert cue.state == CueState.DELIVERED


async def test_tallies_count_per_category_and_undo_only_the_coachs_own() -> None:
    room = lesson()
    tallies = Tallies(room, ("OTR", "BSP"))  # type: ignore[arg-type]
    await tallies.tap("c1", "BSP")
    await tallies.tap("c2", "BSP")
    await tallies.tap("c2", "OTR")
    assert tallies.counts() == {"OTR": 1, "BSP": 2}
    undone = await tallies.undo("c1")
    assert undone.by == "c1" and tallies.counts() == {"OTR": 1, "BSP": 1}
    with pytest.raises(NothingToUndo):
        await tallies.undo("c1")
    with pytest.raises(UnknownCategory):
        await tallies.tap("c1", "Praise")
    assert set(room.to("tally-counts")) == {"c1", "c2"}  # coaches only


async def test_notes_reach_their_author_then_whom_they_are_shared_with() -> None:
    room = lesson()
    notes = Notes(room)  # type: ignore[arg-type]
    note = await notes.add("c1", "  asks a question  ")
    assert note["text"] == "asks a question" and room.to("note") == ["c1"]
    assert notes.visible_to("c2") == []
    with pytest.raises(Forbidden):
        await notes.share("c2", note["id"], Visibility.TEAM)
    room.sent.clear()
    await notes.share("c1", note["id"], Visibility.TEAM)
    assert sorted(room.to("note")) == ["c1", "c2"]  # the teacher reads it afterwards
    assert [n["mine"] for n in notes.visible_to("c1")] == [True]
    assert [n["mine"] for n in notes.visible_to("c2")] == [False]
    with pytest.raises(UnknownNote):
        await notes.share("c1", "n404", Visibility.TEAM)
    with pytest.raises(EmptyNote):
        await notes.add("c1", "   ")
