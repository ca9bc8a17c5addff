"""Session: one coached lesson, live on this node. Owns its Router, its
clock, its participants and its in-memory event log."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.bug_in_ear.cues import CueBook
from server.bug_in_ear.push_to_talk import PushToTalk
from server.bug_in_ear.tallies import Notes, Tallies
from server.bug_in_ear.whisper_policy import WhisperPolicy, is_push_to_talk
from server.clock import SessionClock
from server.config import Config
from server.errors import Forbidden, LimitReached, SidecoachError
from server.media.consumer import Consumer
from server.media.peer import Peer
from server.media.policy import ClassroomPolicy, ProducerInfo, Source
from server.media.producer import Producer
from server.media.router import Router
from server.recording.catalog import RecordingCatalog
from server.recording.recorder import Recorder, RecordingState, new_recording_id
from server.roles import Role, SessionState
from server.seats import Seats
from server.store import SessionRecord, SessionStore
from server.tasks import TaskOwner

logger = logging.getLogger(__name__)

#: events kept in memory per session (the Recorder persists them)
MAX_EVENTS_IN_MEMORY = 10_000


def new_participant_id() -> str:
    return "p-" + secrets.token_hex(6)


class Notifier(Protocol):
    """How a Session talks to its participants (implemented by signaling)."""

    async def emit(self, participant_id: str, event: str, payload: dict[str, Any]) -> None: ...

    async def broadcast(
        self, session_id: str, event: str, payload: dict[str, Any], *, exclude: str | None = None
    ) -> None: ...

    async def deliver(
        self, participant_id: str, event: str, payload: dict[str, Any], timeout_s: float
    ) -> bool:
        """Send and wait for the client's acknowledgement."""
        ...

    async def removed(self, participant_id: str, code: str, message: str) -> None:
        """The session removed this participant (``code`` says why): tell
        it, and let its connection join again."""
        ...


@dataclass
class Participant:
    id: str
    role: Role
    name: str
    joined_ms: int
    peer: Peer
    producer_ids: set[str] = field(default_factory=set)

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "role": str(self.role), "name": self.name}


class _PeerEvents:
    """Routes one peer's events into its session."""

    def __init__(self, session: Session, participant_id: str) -> None:
        self._session = session
        self._pid = participant_id

    async def send_offer(self, payload: dict[str, Any]) -> None:
        await self._session.notifier.emit(self._pid, "offer", payload)

    def producer_ready(self, producer: Producer) -> None:
        self._session.spawn(self._session.on_producer_ready(self._pid, producer))

    def publish_failed(self, producer_id: str, reason: str) -> None:
        self._session.spawn(
            self._session.notifier.emit(
                self._pid, "publish-failed", {"producerId": producer_id, "reason": reason}
            )
        )

    def peer_failed(self, reason: str) -> None:
        self._session.spawn(self._session.remove(self._pid, code="peer_failed", message=reason))


class Session:
    def __init__(
        self,
        record: SessionRecord,
        *,
        config: Config,
        store: SessionStore,
        catalog: RecordingCatalog,
        notifier: Notifier,
    ) -> None:
        self.record = record
        self.catalog = catalog
        self.recorder: Recorder | None = None
        self.id = record.id
        self.config = config
        self.store = store
        self.notifier = notifier
        self.clock = SessionClock()
        self.router = Router(record.id, WhisperPolicy(ClassroomPolicy()))
        self.participants: dict[str, Participant] = {}
        self.events: list[dict[str, Any]] = []
        self.closed = False
        self.seats = Seats(config.limits)
        self._tasks = TaskOwner(f"session {record.id}")
        self._log = logging.LoggerAdapter(logger, {"session": record.id})
        settings = record.settings
        self.push_to_talk = PushToTalk(self, single_whisper=settings.whisper_single)
        self.cues = CueBook(self, settings.prompts)
        self.tallies = Tallies(self, settings.tally_categories)
        self.notes = Notes(self)

    # -- Room (what bug_in_ear needs) ------------------------------------

    def spawn(self, coro: Any) -> None:
        self._tasks.spawn(coro)

    def members(self, *roles: str) -> list[str]:
        return [p.id for p in self.participants.values() if str(p.role) in roles]

    def name_of(self, participant_id: str) -> str:
        participant = self.participants.get(participant_id)
        return participant.name if participant is not None else participant_id

    async def send(self, participant_ids: list[str], event: str, payload: dict[str, Any]) -> None:
        for pid in participant_ids:
            await self.notifier.emit(pid, event, payload)

    async def deliver(
        self, participant_id: str, event: str, payload: dict[str, Any], timeout_s: float
    ) -> bool:
        return await self.notifier.deliver(participant_id, event, payload, timeout_s)

    def log_event(self, event_type: str, **data: Any) -> dict[str, Any]:
        event = {"t": self.clock.now_ms(), "type": event_type, **data}
        self.events.append(event)
        if self.recorder is not None:
            self.recorder.log(event)
        if len(self.events) > MAX_EVENTS_IN_MEMORY:
            del self.events[: len(self.events) - MAX_EVENTS_IN_MEMORY]
        return event

    # -- participants ---------------------------------------------------

    async def join(
        self,
        role: Role,
        name: str | None,
        *,
        participant_id: str | None = None,
        invite_id: str = "",
    ) -> Participant:
        if self.closed:
            raise SidecoachError("session has ended", code="session_ended")
        self.seats.claim(role, invite_id, self.participants)
        if self.record.state == SessionState.SCHEDULED:
            self.record = await self.store.set_state(self.id, SessionState.LIVE, at=time.time())
        replaced = self.seats.claim(role, invite_id, self.participants)
        self.clock.start()
        self._start_recording()
        pid = participant_id or new_participant_id()
        display = name or (self.record.teacher_name if role == Role.TEACHER else str(role))
        peer = Peer(
            participant_id=pid,
            role=str(role),
            config=self.config,
            events=_PeerEvents(self, pid),
            describe_consumer=self.describe_consumer,
        )
        participant = Participant(pid, role, display, self.clock.now_ms(), peer)
        self.participants[pid] = participant
        self.seats.take(pid, invite_id)
        self.router.add_endpoint(peer)
        self.log_event("join", participant=pid, role=str(role), name=display)
        self._log.info("%s joined as %s", pid, role)
        await self.notifier.broadcast(
            self.id, "participant-joined", participant.describe(), exclude=pid
        )
        for old in replaced:
            await self.remove(old, code="replaced", message="this invite joined again elsewhere")
        if role == Role.TEACHER:
            self.cues.redeliver(pid)
        return participant

    async def remove(self, participant_id: str, *, code: str, message: str) -> None:
        """Remove a participant the server gives up on (``code``: e.g.
        ``replaced``, ``peer_failed``); it is told why."""
        if participant_id not in self.participants or self.closed:
            return
        self._log.info("removing %s (%s: %s)", participant_id, code, message)
        await self.notifier.removed(participant_id, code, message)
        await self.leave(participant_id, reason=code)

    async def leave(self, participant_id: str, *, reason: str = "left") -> None:
        participant = self.participants.pop(participant_id, None)
        if participant is None:
            return
        self.seats.release(participant_id)
        await self.router.remove_endpoint(participant_id)
        await participant.peer.close()
        self.log_event("leave", participant=participant_id, reason=reason)
        self._log.info("%s left (%s)", participant_id, reason)
        if not self.closed:
            await self.notifier.broadcast(
                self.id, "participant-left", {"id": participant_id, "reason": reason}
            )

    def get(self, participant_id: str) -> Participant:
        participant = self.participants.get(participant_id)
        if participant is None:
            raise SidecoachError("not in this session", code="not_joined")
        return participant

    # -- media ----------------------------------------------------------

    def publish(
        self, participant: Participant, source: Source, kind: str, codec: str | None
    ) -> str:
        if not self.router.policy.can_produce(str(participant.role), source):
            raise Forbidden(f"a {participant.role} may not publish {source}")
        expected_kind = "video" if source in (Source.CAMERA, Source.SCREEN) else "audio"
        if kind != expected_kind:
            raise SidecoachError(f"{source} must be {expected_kind}", code="invalid_message")
        if len(participant.producer_ids) >= self.config.limits.max_producers_per_participant:
            raise LimitReached("too many tracks published")
        producer_id = "t-" + secrets.token_hex(6)
        info = ProducerInfo(
            producer_id,
            participant.id,
            str(participant.role),
            source,
            kind,
            gated=is_push_to_talk(source),
        )
        participant.peer.request_publish(info, codec)
        participant.producer_ids.add(producer_id)
        return producer_id

    async def unpublish(self, participant: Participant, producer_id: str) -> None:
        if producer_id not in participant.producer_ids:
            raise SidecoachError("no such track", code="unknown_producer")
        participant.producer_ids.discard(producer_id)
        participant.peer.unpublish(producer_id)
        await self.router.close_producer(producer_id)

    async def on_producer_ready(self, participant_id: str, producer: Producer) -> None:
        participant = self.participants.get(participant_id)
        if participant is None or self.closed:
            await producer.close()
            return
        producer.on_close(lambda p: self.spawn(self._producer_closed(p)))
        if producer.info.gated:
            self.push_to_talk.add_track(producer)
        self.router.add_producer(producer)
        self.log_event(
            "track-added",
            participant=participant_id,
            producer=producer.id,
            source=str(producer.info.source),
            kind=producer.kind,
            codec=producer.codec.mime_type,
        )
        await self.notifier.emit(participant_id, "published", {"producerId": producer.id})
        await self.notifier.broadcast(self.id, "producer-added", self.describe_producer(producer))

    async def _producer_closed(self, producer: Producer) -> None:
        self.log_event("track-removed", producer=producer.id)
        if not self.closed:
            await self.notifier.broadcast(self.id, "producer-removed", {"producerId": producer.id})

    def describe_producer(self, producer: Producer) -> dict[str, Any]:
        info = producer.info
        return {
            "producerId": info.producer_id,
            "participantId": info.participant_id,
            "role": info.role,
            "source": str(info.source),
            "kind": info.kind,
            "codec": producer.codec.mime_type,
        }

    def describe_consumer(self, consumer: Consumer) -> dict[str, Any]:
        return {"consumerId": consumer.id, **self.describe_producer(consumer.producer)}

    # -- recording ------------------------------------------------------

    def _start_recording(self) -> None:
        if self.recorder is not None or not self.record.settings.recording:
            return
        directory = self.config.recordings_dir / self.id / new_recording_id()
        self.recorder = Recorder(
            session_id=self.id,
            directory=directory,
            clock=self.clock,
            on_state=self._recording_state_changed,
            session_info={
                "session": self.id,
                "title": self.record.title,
                "teacher_name": self.record.teacher_name,
                "clock_wall_start": self.clock.wall_start,
            },
        )
        self.router.add_endpoint(self.recorder)
        self.spawn(self.catalog.add(self.recorder.recording_id, self.id, directory, time.time()))
        self.log_event("recording-started", recording=self.recorder.recording_id)

    @property
    def recording_state(self) -> dict[str, Any]:
        if self.recorder is None:
            return {"state": str(RecordingState.OFF)}
        return {"state": str(self.recorder.state), "reason": self.recorder.error}

    def _recording_state_changed(self, state: RecordingState, reason: str | None) -> None:
        self.log_event(f"recording-{state}", reason=reason)
        self.spawn(self.notifier.broadcast(self.id, "recording-state", self.recording_state))

    def pause_recording(self, participant: Participant) -> None:
        if self.recorder is None or not self.recorder.pause():
            raise SidecoachError("recording is not running", code="not_recording")
        self._log.info("recording paused by %s", participant.id)

    def resume_recording(self, participant: Participant) -> None:
        if self.recorder is None or not self.recorder.resume():
            raise SidecoachError("recording is not paused", code="not_paused")
        self._log.info("recording resumed by %s", participant.id)

    # -- views ----------------------------------------------------------

    def coaching_state(self, role: Role) -> dict[str, Any]:
        """What a joining participant's page needs for whispers, cues,
        tallies and notes (coaches see the shared state; others see less)."""
        state: dict[str, Any] = {"whispering": self.push_to_talk.state()["whispering"]}
        if role == Role.COACH:
            state.update(
                prompts=self.cues.prompts,
                tallyCategories=self.tallies.categories,
                counts=self.tallies.counts(),
                cues=[c.to_client() for c in self.cues.cues.values()],
                notes=self.notes.notes,
            )
        elif role == Role.OBSERVER:
            state = {}
        return state

    def summary(self) -> dict[str, Any]:
        by_role: dict[str, int] = {}
        for p in self.participants.values():
            by_role[str(p.role)] = by_role.get(str(p.role), 0) + 1
        return {
            "participants": by_role,
            "tracks": len(self.router.producers),
            "clock_ms": self.clock.now_ms(),
        }

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for pid in list(self.participants):
            await self.leave(pid, reason="session ended")
        await self.router.close()
        if self.recorder is not None:
            self.log_event("recording-stopped")
            manifest = await self.recorder.close()
            await self.catalog.finish(self.recorder.recording_id, manifest)
        await self._tasks.aclose()
        self._log.info("session closed")
