"""The socket.io edge: join with a token, publish/unpublish, SDP answers.

Every incoming message is rate-limited, size-checked and validated against
its schema here; errors become ``{"ok": false, "error": {"code", "message"}}``
acks and change nothing. Packets that are not messages at all are closed by
the transport (``transport.py``) and counted here. This module implements
``session.Notifier`` and the transport's ``EdgeHooks``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import socketio
from pydantic import BaseModel, ValidationError

from server.core.config import Config, Limits
from server.core.errors import (
    Forbidden,
    InvalidMessage,
    MessageTooLarge,
    RateLimited,
    SidecoachError,
    Unauthorized,
)
from server.core.ratelimit import LogLimiter, TokenBucket
from server.core.tasks import TaskOwner
from server.core.tokens import InviteClaims, verify_invite
from server.core.turn import ice_config_for
from server.http.admin import session_to_json
from server.live.manager import SessionManager
from server.live.session import Participant, Session, new_participant_id
from server.ops.metrics import Metrics
from server.signaling import debrief_routes, schemas
from server.signaling.admission import TIMEOUT, Admission
from server.signaling.transport import EdgeServer

logger = logging.getLogger(__name__)

#: engine.io refuses (and disconnects on) packets above this; our own,
#: smaller ``limits.max_message_bytes`` answers with an error instead
TRANSPORT_HARD_LIMIT_BYTES = 1_000_000

#: event names socket.io keeps for the transport; a client may not send them
RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error"})

M = TypeVar("M", bound=BaseModel)
Reply = dict[str, Any]
Route = Callable[["Connection", Any], Awaitable[Reply]]


@dataclass
class Connection:
    sid: str
    bucket: TokenBucket
    session: Session | None = None
    participant: Participant | None = None
    joining: bool = False


class JoinRouting(Protocol):
    """Several nodes (server/cluster): where a join goes."""

    async def route_join(self, data: Any, eio_sid: str, remote: str) -> Any:
        """None: join here; a transport ``Pipe``: hand the socket over to
        the node hosting the session; a dict: the reply."""
        ...


def error_reply(exc: SidecoachError) -> Reply:
    return {"ok": False, "error": {"code": exc.code, "message": exc.message}}


class Signaling:
    def __init__(
        self,
        config: Config,
        manager_factory: Callable[[Signaling], SessionManager],
        metrics: Metrics | None = None,
        *,
        sid_prefix: str = "",
    ):
        self.config = config
        self.metrics = metrics if metrics is not None else Metrics()
        self.sio = EdgeServer(
            self,
            sid_prefix=sid_prefix,
            async_mode="aiohttp",
            max_http_buffer_size=TRANSPORT_HARD_LIMIT_BYTES,
            logger=False,
            engineio_logger=False,
        )
        self.manager = manager_factory(self)
        self._conns: dict[str, Connection] = {}
        self._sid_of: dict[str, str] = {}
        self._routes: dict[str, Route] = {}
        self._admission = Admission(config.limits)
        self._warnings = LogLimiter(config.limits.warnings_per_minute)
        self._tasks = TaskOwner("signaling")
        self._sweeping = False
        #: several nodes: decides which node a join goes to (None: this one)
        self.placement: JoinRouting | None = None
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self._route("join", schemas.Join, self._join, needs_join=False)
        self._route("publish", schemas.Publish, self._publish)
        self._route("unpublish", schemas.Unpublish, self._unpublish)
        self._route("answer", schemas.Answer, self._answer)
        self._route("leave", schemas.Empty, self._leave)
        coach, teacher = frozenset({"coach"}), frozenset({"teacher"})
        self._route("whisper-start", schemas.Empty, self._whisper_start, roles=coach)
        self._route("whisper-stop", schemas.Empty, self._whisper_stop, roles=coach)
        self._route("cue", schemas.SendCue, self._cue, roles=coach)
        self._route("cue-ack", schemas.CueAck, self._cue_ack, roles=teacher)
        self._route("tally", schemas.Tally, self._tally, roles=coach)
        self._route("tally-undo", schemas.Empty, self._tally_undo, roles=coach)
        self._route("note", schemas.Note, self._note, roles=coach)
        self._route("note-share", schemas.NoteShare, self._note_share, roles=coach)
        # the teacher's, or a debrief owner's (checked by the session)
        decides = frozenset({"teacher", "member"})
        self._route("recording-pause", schemas.Empty, self._recording_pause, roles=decides)
        self._route("recording-resume", schemas.Empty, self._recording_resume, roles=decides)
        self._route("recording-plan", schemas.RecordingPlan, self._recording_plan, roles=decides)
        self._route("end-session", schemas.Empty, self._end_session, roles=decides)
        debrief_routes.register(self)

    # -- Notifier -------------------------------------------------------

    async def emit(self, participant_id: str, event: str, payload: dict[str, Any]) -> None:
        sid = self._sid_of.get(participant_id)
        if sid is not None:
            await self.sio.emit(event, payload, to=sid)

    async def broadcast(
        self, session_id: str, event: str, payload: dict[str, Any], *, exclude: str | None = None
    ) -> None:
        skip = self._sid_of.get(exclude) if exclude else None
        await self.sio.emit(event, payload, room=session_id, skip_sid=skip)

    async def deliver(
        self, participant_id: str, event: str, payload: dict[str, Any], timeout_s: float
    ) -> bool:
        sid = self._sid_of.get(participant_id)
        if sid is None:
            return False
        try:
            await self.sio.call(event, payload, to=sid, timeout=timeout_s)
        except (TimeoutError, socketio.exceptions.TimeoutError, socketio.exceptions.SocketIOError):
            return False
        return True

    async def removed(self, participant_id: str, code: str, message: str) -> None:
        """The session removed this participant: its connection forgets it
        (a new ``join`` on the same socket works) and is told why."""
        self.metrics.participants_removed.labels(code).inc()
        sid = self._sid_of.pop(participant_id, None)
        conn = self._conns.get(sid) if sid is not None else None
        if conn is None or conn.participant is None or conn.participant.id != participant_id:
            return
        session = conn.session
        conn.session = conn.participant = None
        self._set_joined(conn.sid, False)
        if session is not None:
            await self.sio.leave_room(conn.sid, session.id)
        await self.sio.emit("removed", {"code": code, "message": message}, to=conn.sid)

    # -- EdgeHooks (the transport) --------------------------------------

    def admit(self, eio_sid: str, remote: str) -> str | None:
        refusal = self._admission.admit(eio_sid, remote)
        if refusal is not None:
            self.metrics.sockets_refused.labels(refusal).inc()
            self._warn("refused a connection from %s: %s", remote, refusal)
        elif not self._sweeping:
            self._sweeping = True
            self._tasks.spawn(self._close_unauthenticated(), name="unauthenticated sockets")
        return refusal

    def gone(self, eio_sid: str) -> None:
        self._admission.gone(eio_sid)

    def malformed(self, sid: str, reason: str, detail: str = "") -> None:
        self.metrics.signaling_malformed.labels(reason).inc()
        self._warn("closed socket %s: %s %s", sid, reason, detail)

    async def route(self, sid: str, eio_sid: str, remote: str, data: Any) -> Any:
        """A ``join`` on a socket not joined here: may hand it to another node."""
        conn = self._conns.get(sid)
        if self.placement is None or conn is None or conn.participant or conn.joining:
            return None
        if not conn.bucket.allow():  # placement may ask Redis: a flood must not
            return error_reply(RateLimited("too many messages; slow down"))
        routed = await self.placement.route_join(data, eio_sid, remote)
        if routed is not None and not isinstance(routed, dict):
            self._admission.joined(eio_sid, True)  # the session's node admits it now
        return routed

    async def dispatch(self, sid: str, data: Any, size: int) -> Reply:
        """One message from socket ``sid``: ``[event, payload?]``. Always
        returns a reply; never raises."""
        event = data[0] if isinstance(data, list) and data and isinstance(data[0], str) else "?"
        try:
            conn = self._conns.get(sid)
            if conn is None:
                raise Unauthorized("not connected")
            if not conn.bucket.allow():
                raise RateLimited("too many messages; slow down")
            if event == "?":
                raise InvalidMessage("a message is [event name, payload]")
            if event in RESERVED_EVENTS:
                raise InvalidMessage(f"{event!r} is reserved", code="reserved_event")
            if len(data) > 2:
                raise InvalidMessage(f"{event[:40]}: one payload expected, got {len(data) - 1}")
            route = self._routes.get(event)
            if route is None:
                raise InvalidMessage(f"unknown event {event[:40]!r}", code="unknown_event")
            limit = self.config.limits.max_message_bytes
            if size > limit:
                raise MessageTooLarge(f"message of {size} bytes exceeds {limit}")
            reply = {"ok": True, **await route(conn, data[1] if len(data) > 1 else None)}
            self.metrics.signaling_messages.labels("ok").inc()
            self.metrics.signaling_events.labels(event).inc()
            return reply
        except SidecoachError as exc:
            self.metrics.signaling_messages.labels(exc.code).inc()
            if not isinstance(exc, RateLimited) and logger.isEnabledFor(logging.DEBUG):
                logger.debug("%s: refused %.40s: %s (%s)", sid, event, exc.message, exc.code)
            return error_reply(exc)
        except Exception:
            self.metrics.signaling_messages.labels("internal").inc()
            logger.exception("%s: error handling %.40s", sid, event)
            return error_reply(SidecoachError("internal error"))

    # -- plumbing -------------------------------------------------------

    def _route(
        self,
        event: str,
        model: type[M],
        handler: Callable[[Connection, M], Awaitable[Reply]],
        *,
        needs_join: bool = True,
        roles: frozenset[str] | None = None,
    ) -> None:
        async def on_event(conn: Connection, data: Any) -> Reply:
            try:
                message = model.model_validate({} if data is None else data)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "message"
                raise InvalidMessage(f"{event}: {where}: {first['msg']}") from None
            if needs_join and conn.participant is None:
                raise Unauthorized("join first")
            participant = conn.participant
            if roles is not None and participant and str(participant.role) not in roles:
                allowed = " or ".join(sorted(roles))
                raise Forbidden(f"only a {allowed} may send {event}")
            return await handler(conn, message)

        self._routes[event] = on_event

    def _warn(self, msg: str, *args: Any) -> None:
        allowed, suppressed = self._warnings.allow()
        if not allowed:
            self.metrics.log_lines_suppressed.inc()
        elif suppressed:
            logger.warning(msg + " (and %d more not logged)", *args, suppressed)
        else:
            logger.warning(msg, *args)

    def _set_joined(self, sid: str, joined: bool) -> None:
        eio_sid = self.sio.eio_sid(sid)
        if eio_sid is not None:
            self._admission.joined(eio_sid, joined)

    async def _close_unauthenticated(self) -> None:
        interval = max(0.05, min(1.0, self.config.limits.unauthenticated_timeout_s / 4))
        while True:
            await asyncio.sleep(interval)
            for eio_sid in self._admission.expired():
                self._admission.gone(eio_sid)
                self.metrics.sockets_refused.labels(TIMEOUT).inc()
                await self.sio.close_connection(eio_sid)

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if sid in self._conns:  # only the transport connects; never twice
            return
        limits: Limits = self.config.limits
        self._conns[sid] = Connection(
            sid, TokenBucket(limits.messages_per_second, limits.message_burst)
        )

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self._conns.pop(sid, None)
        if conn is not None and conn.session is not None and conn.participant is not None:
            self._sid_of.pop(conn.participant.id, None)
            await conn.session.leave(conn.participant.id, reason="disconnected")

    # -- handlers -------------------------------------------------------

    async def _join(self, conn: Connection, msg: schemas.Join) -> Reply:
        if conn.participant is not None or conn.joining:
            raise SidecoachError("already joined", code="already_joined")
        conn.joining = True
        try:
            claims, session, participant = await self._join_session(conn, msg)
        finally:
            conn.joining = False
        conn.session, conn.participant = session, participant
        self._set_joined(conn.sid, True)
        await self.sio.enter_room(conn.sid, session.id)
        return {
            "participantId": participant.id,
            "role": str(participant.role),
            "name": participant.name,
            "session": session_to_json(session.record),
            "clockMs": session.clock.now_ms(),
            **ice_config_for(self.config, claims),
            "participants": [
                p.describe() for p in session.participants.values() if p.id != participant.id
            ],
            "producers": [session.describe_producer(p) for p in session.router.producers.values()],
            "coaching": session.coaching_state(participant),
            "recording": session.recording_state,
            "owner": participant.owner,
            "debrief": session.debrief.state() if session.debrief is not None else None,
        }

    async def _join_session(
        self, conn: Connection, msg: schemas.Join
    ) -> tuple[InviteClaims, Session, Participant]:
        claims = verify_invite(self.config.secret, msg.token)
        if msg.sessionId is not None and msg.sessionId != claims.session_id:
            raise Forbidden("this invite is for another session", code="wrong_session")
        session = await self.manager.open(claims.session_id)
        pid = new_participant_id()
        self._sid_of[pid] = conn.sid
        try:
            participant = await session.join(
                claims.role,
                msg.name or claims.name,
                participant_id=pid,
                invite_id=claims.invite_id,
                owner=claims.owner,
            )
        except BaseException:
            self._sid_of.pop(pid, None)
            raise
        if self._conns.get(conn.sid) is not conn or self._sid_of.get(pid) != conn.sid:
            # the socket went away (or the seat was taken over) during the join
            self._sid_of.pop(pid, None)
            await session.leave(pid, reason="disconnected")
            raise SidecoachError("the connection closed during the join", code="disconnected")
        return claims, session, participant

    def add_route(
        self,
        event: str,
        model: type[M],
        handler: Callable[[Connection, M], Awaitable[Reply]],
        *,
        roles: frozenset[str] | None = None,
    ) -> None:
        """Add a message handled like every other (for modules with routes of their own)."""
        self._route(event, model, handler, roles=roles)

    def joined(self, conn: Connection) -> tuple[Session, Participant]:
        return self._joined(conn)

    def _joined(self, conn: Connection) -> tuple[Session, Participant]:
        if conn.session is None or conn.participant is None:
            raise Unauthorized("join first")
        if conn.participant.id not in conn.session.participants:
            raise Forbidden("no longer in the session")
        return conn.session, conn.participant

    async def _publish(self, conn: Connection, msg: schemas.Publish) -> Reply:
        session, participant = self._joined(conn)
        producer_id = session.publish(participant, msg.source, msg.kind, msg.codec)
        return {"producerId": producer_id}

    async def _unpublish(self, conn: Connection, msg: schemas.Unpublish) -> Reply:
        session, participant = self._joined(conn)
        await session.unpublish(participant, msg.producerId)
        return {}

    async def _answer(self, conn: Connection, msg: schemas.Answer) -> Reply:
        _, participant = self._joined(conn)
        limit = self.config.limits.max_sdp_bytes
        if len(msg.sdp.encode()) > limit:
            raise MessageTooLarge(f"SDP of more than {limit} bytes")
        await participant.peer.handle_answer(msg.negotiationId, msg.sdp)
        return {}

    async def _leave(self, conn: Connection, msg: schemas.Empty) -> Reply:
        session, participant = self._joined(conn)
        conn.session = conn.participant = None
        self._sid_of.pop(participant.id, None)
        self._set_joined(conn.sid, False)
        await self.sio.leave_room(conn.sid, session.id)
        await session.leave(participant.id, reason="left")
        return {}

    async def _whisper_start(self, conn: Connection, msg: schemas.Empty) -> Reply:
        session, participant = self._joined(conn)
        await session.push_to_talk.start(participant.id)
        return {}

    async def _whisper_stop(self, conn: Connection, msg: schemas.Empty) -> Reply:
        session, participant = self._joined(conn)
        await session.push_to_talk.stop(participant.id)
        return {}

    async def _cue(self, conn: Connection, msg: schemas.SendCue) -> Reply:
        session, participant = self._joined(conn)
        cue = await session.cues.send(
            participant.id,
            text=msg.text,
            prompt_index=msg.promptIndex,
            icon=msg.icon,
            color=msg.color,
            tone=msg.tone,
        )
        return {"cue": cue.to_client()}

    async def _cue_ack(self, conn: Connection, msg: schemas.CueAck) -> Reply:
        session, participant = self._joined(conn)
        cue = await session.cues.acknowledge(participant.id, msg.cueId)
        return {"cue": cue.to_client()}

    async def _tally(self, conn: Connection, msg: schemas.Tally) -> Reply:
        session, participant = self._joined(conn)
        await session.tallies.tap(participant.id, msg.category)
        return {"counts": session.tallies.counts()}

    async def _tally_undo(self, conn: Connection, msg: schemas.Empty) -> Reply:
        session, participant = self._joined(conn)
        await session.tallies.undo(participant.id)
        return {"counts": session.tallies.counts()}

    async def _note(self, conn: Connection, msg: schemas.Note) -> Reply:
        session, participant = self._joined(conn)
        return {"note": await session.notes.add(participant.id, msg.text, msg.visibility)}

    async def _note_share(self, conn: Connection, msg: schemas.NoteShare) -> Reply:
        session, participant = self._joined(conn)
        return {"note": await session.notes.share(participant.id, msg.noteId, msg.visibility)}

    async def _recording_pause(self, conn: Connection, msg: schemas.Empty) -> Reply:
        session, participant = self._joined(conn)
        session.pause_recording(participant)
        return {"recording": session.recording_state}

    async def _recording_resume(self, conn: Connection, msg: schemas.Empty) -> Reply:
        session, participant = self._joined(conn)
        session.resume_recording(participant)
        return {"recording": session.recording_state}

    async def _recording_plan(self, conn: Connection, msg: schemas.RecordingPlan) -> Reply:
        session, participant = self._joined(conn)
        await session.plan_recording(participant, msg.record)
        return {"recording": session.recording_state}

    async def _end_session(self, conn: Connection, msg: schemas.Empty) -> Reply:
        session, participant = self._joined(conn)
        if not (participant.role == "teacher" or participant.owner):
            raise Forbidden("only the teacher (or the debrief's owner) ends the session")
        await self.manager.end_session(session.id, reason=f"ended by {participant.name}")
        return {}

    async def close(self) -> None:
        await self.manager.close()
        await self._tasks.aclose()
        await self.sio.aclose()
