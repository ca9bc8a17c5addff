"""Session: one coached lesson, live on this node. Owns its Router, its
clock, its participants and its in-memory event log."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from server.access.policy import (
    AccessPolicy,
    Action,
    Item,
    Reader,
    Visibility,
    item_of_source,
)
from server.bug_in_ear.cues import CueBook
from server.bug_in_ear.notes import Notes
from server.bug_in_ear.push_to_talk import PushToTalk, is_push_to_talk
from server.bug_in_ear.tallies import Tallies
from server.core.clock import SessionClock
from server.core.config import Config
from server.core.errors import (
    Forbidden,
    InvalidMessage,
    LimitReached,
    NotJoined,
    SessionEnded,
)
from server.core.roles import Role, SessionState
from server.core.tasks import TaskOwner
from server.live.debrief.room import DebriefRoom, SharedComment
from server.live.media_failure import Cause, diagnose
from server.live.offers import ClientOffer, publish_plan
from server.live.recording import SessionRecording
from server.live.seats import Seats
from server.media.consumer import Consumer
from server.media.errors import UnknownProducer
from server.media.peer import Peer
from server.media.policy import ProducerInfo, Source
from server.media.producer import Producer
from server.media.router import Router
from server.recording.catalog import RecordingCatalog
from server.storage.sessions import SessionKind, SessionRecord, SessionStore

logger = logging.getLogger(__name__)

#: how other pages show a device publishing on a camera token (WHIP)
ROOM_CAMERA_NAME = "Room camera (WHIP)"
#: events kept in memory per session (the Recorder persists them)
MAX_EVENTS_IN_MEMORY = 10_000
#: what happened before a recording started that it keeps (with the joins)
EVENTS_BEFORE_RECORDING = frozenset(
    {
        "tally",
        "tally-undo",
        "note",
        "note-shared",
        "cue",
        "cue-delivered",
        "cue-ack",
        "whisper-start",
        "whisper-stop",
    }
)


class Removal(StrEnum):
    """Why the server removed a participant: the code of ``removed``."""

    #: the media connection failed, or an offer went unanswered
    PEER_FAILED = "peer_failed"
    #: the same invite joined again elsewhere
    REPLACED = "replaced"
    #: several nodes: the lesson continues on another node
    MOVED = "moved"
    #: the person signed out, or an admin disabled their account
    SIGNED_OUT = "signed_out"


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

    async def removed(
        self, participant_id: str, code: str, message: str, detail: dict[str, str] | None = None
    ) -> None:
        """The session removed this participant (``code`` says why, with
        ``detail`` such as ``cause`` and ``reason``): tell it, and let its
        connection join again."""
        ...


@dataclass
class Participant:
    id: str
    role: Role
    name: str
    joined_ms: int
    peer: Peer
    #: the invite this person came in with: who they are across rejoins
    invite_id: str = ""
    #: a debrief's owner (decides whether the debrief is recorded)
    owner: bool = False
    producer_ids: set[str] = field(default_factory=set)

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "role": str(self.role), "name": self.name}

    @property
    def reader(self) -> Reader:
        return Reader(self.role, self.invite_id, self.name, owner=self.owner)


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
        self._session.spawn(self._session.peer_failed(self._pid, reason))


class Session:
    def __init__(
        self,
        record: SessionRecord,
        *,
        config: Config,
        store: SessionStore,
        catalog: RecordingCatalog,
        notifier: Notifier,
        policy: AccessPolicy,
    ) -> None:
        self.record = record
        self.id = record.id
        self.config = config
        self.store = store
        self.notifier = notifier
        self.policy = policy
        self.clock = SessionClock()
        self.router = Router(record.id, policy)
        self.participants: dict[str, Participant] = {}
        self.events: list[dict[str, Any]] = []
        #: the ``track-added`` event of every track flowing now (a recording
        #: that starts later begins with them)
        self._tracks_added: dict[str, dict[str, Any]] = {}
        self.closed = False
        #: set (under the manager's lock) once the session is being ended:
        #: no join may get in any more
        self.ending = False
        #: monotonic time since when nobody is here (None while someone is)
        self.empty_since: float | None = time.monotonic()
        self.kind = record.kind
        self.seats = Seats(config.limits, debrief=record.kind == SessionKind.DEBRIEF)
        self._tasks = TaskOwner(f"session {record.id}")
        #: participants whose failed media connection is being diagnosed
        self._failing: set[str] = set()
        self._log = logging.LoggerAdapter(logger, {"session": record.id})
        self.recording = SessionRecording(
            record,
            config=config,
            store=store,
            catalog=catalog,
            clock=self.clock,
            router=self.router,
            host=self,
        )
        settings = record.settings
        self.push_to_talk = PushToTalk(self, single_whisper=settings.whisper_single)
        self.cues = CueBook(self, settings.prompts)
        self.tallies = Tallies(self, settings.tally_categories)
        self.notes = Notes(self)
        #: a debrief's shared playback and live comments (None for a lesson)
        self.debrief: DebriefRoom | None = None
        if record.kind == SessionKind.DEBRIEF and record.recording_id:
            self.debrief = DebriefRoom(record.recording_id, self, policy)

    # -- Room (what bug_in_ear needs) ------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._tasks.spawn(coro)

    def members(self, *roles: str) -> list[str]:
        return [p.id for p in self.participants.values() if str(p.role) in roles]

    def audience(self, item: Item) -> list[str]:
        """Who receives ``item`` live, by the access policy."""
        return self.members(*self.policy.live_roles(item))

    def note_audience(self, author_invite: str, visibility: Visibility) -> list[str]:
        return [
            p.id
            for p in self.participants.values()
            if self.policy.receives_note(
                str(p.role), is_author=p.invite_id == author_invite, visibility=visibility
            )
        ]

    def members_now(self) -> list[Participant]:
        return list(self.participants.values())

    def watches_recording(self, recording_id: str) -> bool:
        return self.debrief is not None and self.debrief.recording_id == recording_id

    async def comment_added(self, comment: SharedComment) -> None:
        if self.debrief is not None and not self.closed:
            await self.debrief.comment_added(comment)

    def invite_of(self, participant_id: str) -> str:
        participant = self.participants.get(participant_id)
        return participant.invite_id if participant is not None else ""

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

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def log_event(self, event_type: str, **data: Any) -> dict[str, Any]:
        """Append to the event log (memory and the recording), on the
        session clock. Callers pass every field the line needs: it is
        written as it is now."""
        event = {"t": self.clock.now_ms(), "type": event_type, **data}
        self.events.append(event)
        self.recording.log(event)
        if len(self.events) > MAX_EVENTS_IN_MEMORY:
            del self.events[: len(self.events) - MAX_EVENTS_IN_MEMORY]
        return event

    def present_events(self) -> list[dict[str, Any]]:
        """What a recording starting now begins with: the ``join`` of
        everyone here, the ``track-added`` of every track flowing (the one
        whose arrival starts the recording included) and the coaching that
        happened before it (a tally or a note before Go live: review shows
        those minutes collapsed before its 0:00), in order."""
        here = set(self.participants)
        joins = [e for e in self.events if e["type"] == "join" and e["participant"] in here]
        tracks = [e for p, e in self._tracks_added.items() if p in self.router.producers]
        coaching = [e for e in self.events if e["type"] in EVENTS_BEFORE_RECORDING]
        return sorted([*joins, *tracks, *coaching], key=lambda e: int(e["t"]))

    def recording_changed(self) -> None:
        if not self.closed:
            self.spawn(
                self.notifier.broadcast(self.id, "recording-state", self.recording.to_client())
            )

    # -- participants ---------------------------------------------------

    async def join(
        self,
        role: Role,
        name: str | None,
        *,
        participant_id: str | None = None,
        invite_id: str = "",
        owner: bool = False,
        offer: ClientOffer | None = None,
    ) -> Participant:
        """Join ``role``; with a client's ``offer`` (WHIP, WHEP) it is
        answered first (``participant.peer.pc.localDescription``), and an
        offer refused changes nothing."""
        if self.closed or self.ending:
            raise SessionEnded("this session has ended")
        self.seats.claim(role, invite_id, self.participants)
        pid = participant_id or new_participant_id()
        peer: Peer | None = None
        publishing: list[str] = []
        try:
            if offer is not None:
                peer = self._new_peer(pid, role, client_offers=True)
                plan, publishing = publish_plan(self.policy, self.config.limits, pid, str(role))
                await peer.answer_offer(offer.sdp, plan, receive=offer.receive)
            if self.record.state == SessionState.SCHEDULED:
                self.record = await self.store.set_state(self.id, SessionState.LIVE, at=time.time())
            if self.closed or self.ending:  # ended while the store was being updated
                raise SessionEnded("this session has ended")
            replaced = self.seats.claim(role, invite_id, self.participants)
        except BaseException:
            if peer is not None:
                await peer.close()
            raise
        self.clock.start()
        display = name or self._default_name(role)
        peer = peer or self._new_peer(pid, role)
        participant = Participant(
            pid, role, display, self.clock.now_ms(), peer, invite_id, owner=owner
        )
        participant.producer_ids.update(publishing)
        self.participants[pid] = participant
        self.empty_since = None
        self.seats.take(pid, invite_id)
        self.router.add_endpoint(peer)
        self.log_event("join", participant=pid, role=str(role), name=display, invite=invite_id)
        self._log.info("%s joined as %s", pid, role)
        await self.notifier.broadcast(
            self.id, "participant-joined", participant.describe(), exclude=pid
        )
        for old in replaced:
            again = "this invite joined again elsewhere"
            await self.remove(old, code=Removal.REPLACED, message=again)
        if self.policy.receives(str(role), Item.CUE):
            self.cues.redeliver(pid)
        if offer is not None:
            peer.start()
        return participant

    def _default_name(self, role: Role) -> str:
        if role == Role.TEACHER:
            return self.record.teacher_name
        return ROOM_CAMERA_NAME if role == Role.CAMERA else str(role)

    def _new_peer(self, pid: str, role: Role, *, client_offers: bool = False) -> Peer:
        return Peer(
            participant_id=pid,
            role=str(role),
            config=self.config,
            events=_PeerEvents(self, pid),
            describe_consumer=self.describe_consumer,
            client_offers=client_offers,
        )

    async def remove(
        self,
        participant_id: str,
        *,
        code: Removal,
        message: str,
        detail: dict[str, str] | None = None,
    ) -> None:
        """Remove a participant the server gives up on (``code``: e.g.
        ``replaced``, ``peer_failed``); it is told why."""
        if participant_id not in self.participants or self.closed:
            return
        self._log.info("removing %s (%s: %s)", participant_id, code, message)
        await self.notifier.removed(participant_id, code, message, detail)
        await self.leave(participant_id, reason=code)

    async def peer_failed(self, participant_id: str, reason: str) -> None:
        """A participant's media connection failed: say why where it
        happened (a WARNING naming ICE and TURN), tell the page the cause
        and a sentence it can show, and remove the participant."""
        participant = self.participants.get(participant_id)
        if participant is None or self.closed or participant_id in self._failing:
            return
        self._failing.add(participant_id)
        try:
            flowed = any(
                layer.packets
                for pid in participant.producer_ids
                if (producer := self.router.producers.get(pid)) is not None
                for layer in producer.layers
            ) or any(c.packets_sent for c in self.router.consumers_of(participant_id))
            failure = await diagnose(participant.peer.pc, self.config, reason, flowed=flowed)
            quiet = failure.cause in (Cause.CLOSED, Cause.CONNECTION_LOST)
            (self._log.info if quiet else self._log.warning)(
                "media connection of %s (%s) failed: %s: %s",
                participant_id, participant.role, failure.cause, failure.detail,
            )  # fmt: skip
            detail = {"cause": str(failure.cause), "reason": failure.reason}
            await self.remove(
                participant_id, code=Removal.PEER_FAILED, message=reason, detail=detail
            )
        finally:
            self._failing.discard(participant_id)

    async def leave(self, participant_id: str, *, reason: str = "left") -> None:
        participant = self.participants.pop(participant_id, None)
        if participant is None:
            return
        if not self.participants:
            self.empty_since = time.monotonic()
        self.seats.release(participant_id)
        if self.debrief is not None:
            self.debrief.left(participant_id)
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
            raise NotJoined("not in this session")
        return participant

    # -- media ----------------------------------------------------------

    def publish(
        self, participant: Participant, source: Source, kind: str, codec: str | None
    ) -> str:
        if not self.policy.can_produce(str(participant.role), source):
            raise Forbidden(f"a {participant.role} may not publish {source}")
        expected_kind = "video" if source in (Source.CAMERA, Source.SCREEN) else "audio"
        if kind != expected_kind:
            raise InvalidMessage(f"{source} must be {expected_kind}")
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
            raise UnknownProducer("no such track")
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
        self._tracks_added[producer.id] = self.log_event(
            "track-added",
            participant=participant_id,
            producer=producer.id,
            source=str(producer.info.source),
            kind=producer.kind,
            codec=producer.codec.mime_type,
        )
        await self.notifier.emit(participant_id, "published", {"producerId": producer.id})
        await self.notifier.broadcast(self.id, "producer-added", self.describe_producer(producer))
        if item_of_source(producer.info.source, producer.info.role) in (
            Item.CLASSROOM,
            Item.MEMBER_MEDIA,
        ):
            self.recording.teacher_went_live()

    async def _producer_closed(self, producer: Producer) -> None:
        self._tracks_added.pop(producer.id, None)
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

    @property
    def recording_state(self) -> dict[str, Any]:
        return self.recording.to_client()

    def _decides_recording(self, participant: Participant) -> None:
        if not self.policy.may(participant.reader, Action.DECIDE_RECORDING):
            raise Forbidden("only the teacher (or the debrief's owner) decides the recording")

    def pause_recording(self, participant: Participant) -> None:
        self._decides_recording(participant)
        self.recording.pause()
        self._log.info("recording paused by %s", participant.id)

    def resume_recording(self, participant: Participant) -> None:
        self._decides_recording(participant)
        self.recording.resume()
        self._log.info("recording resumed by %s", participant.id)

    async def plan_recording(self, participant: Participant, recording: bool) -> None:
        """The teacher (or a debrief's owner) switches recording on or off."""
        self._decides_recording(participant)
        await self.recording.set_plan(
            recording, by_role=str(participant.role), by_name=participant.name
        )

    # -- views ----------------------------------------------------------

    def coaching_state(self, participant: Participant) -> dict[str, Any]:
        """What a joining participant's page needs for whispers, cues,
        tallies and notes: what the access policy lets its role receive and
        do, and ``permissions`` (the page offers nothing else)."""
        reader, role, policy = participant.reader, str(participant.role), self.policy
        state: dict[str, Any] = {"permissions": policy.permissions(reader)}
        if policy.receives(role, Item.WHISPER_STATE):
            state["whispering"] = self.push_to_talk.state()["whispering"]
        if policy.may(reader, Action.SEND_CUE):
            state["prompts"] = self.cues.prompts
        if policy.receives(role, Item.CUE_STATE):
            state["cues"] = [c.to_client() for c in self.cues.cues.values()]
        if policy.may(reader, Action.TALLY):
            state["tallyCategories"] = self.tallies.categories
        if policy.receives(role, Item.TALLY):
            state["counts"] = self.tallies.counts()
        if policy.may(reader, Action.NOTE):
            state["notes"] = self.notes.visible_to(participant.id)
        return state

    def summary(self) -> dict[str, Any]:
        by_role: dict[str, int] = {}
        for p in self.participants.values():
            by_role[str(p.role)] = by_role.get(str(p.role), 0) + 1
        classroom = sum(
            1
            for p in self.router.producers.values()
            if item_of_source(p.info.source, p.info.role) == Item.CLASSROOM
            and p.packets_received > 0  # its media flows: not just offered
        )
        return {
            "participants": by_role,
            "tracks": len(self.router.producers),
            #: the classroom's tracks whose media arrives: what "LIVE" means
            "classroom_tracks": classroom,
            "clock_ms": self.clock.now_ms(),
            "recording": self.recording.state,
        }

    async def close(self, *, reason: str = "session ended") -> None:
        """Everyone leaves (each leave logged), the recording is finalized,
        the media closed; idempotent."""
        if self.closed:
            return
        self.closed = True
        for pid in list(self.participants):
            await self.leave(pid, reason=reason)
        await self.recording.close()
        await self.router.close()
        await self._tasks.aclose()
        self._log.info("session closed (%s)", reason)
