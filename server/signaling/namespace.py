"""The socket.io edge: join with a token, publish/unpublish, SDP answers.

Every incoming message is size-checked, rate-limited and validated against
its schema here; errors become ``{"ok": false, "error": {"code", "message"}}``
acks and change nothing. This module implements ``session.Notifier``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import socketio
from pydantic import BaseModel, ValidationError

from server.config import Config
from server.errors import (
    Forbidden,
    InvalidMessage,
    MessageTooLarge,
    RateLimited,
    SidecoachError,
    Unauthorized,
)
from server.http_api import session_to_json
from server.session import Participant, Session, new_participant_id
from server.session_manager import SessionManager
from server.signaling import schemas
from server.signaling.ratelimit import TokenBucket
from server.tokens import verify_invite
from server.turn import ice_config_for

logger = logging.getLogger(__name__)

#: engine.io refuses (and disconnects on) packets above this; our own,
#: smaller ``limits.max_message_bytes`` answers with an error instead
TRANSPORT_HARD_LIMIT_BYTES = 1_000_000

M = TypeVar("M", bound=BaseModel)
Reply = dict[str, Any]


@dataclass
class Connection:
    sid: str
    bucket: TokenBucket
    session: Session | None = None
    participant: Participant | None = None


def error_reply(exc: SidecoachError) -> Reply:
    return {"ok": False, "error": {"code": exc.code, "message": exc.message}}


class Signaling:
    def __init__(self, config: Config, manager_factory: Callable[[Signaling], SessionManager]):
        self.config = config
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            max_http_buffer_size=TRANSPORT_HARD_LIMIT_BYTES,
            logger=False,
            engineio_logger=False,
        )
        self.manager = manager_factory(self)
        self._conns: dict[str, Connection] = {}
        self._sid_of: dict[str, str] = {}
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("*", self._on_unknown)
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
        self._route("recording-pause", schemas.Empty, self._recording_pause, roles=teacher)
        self._route("recording-resume", schemas.Empty, self._recording_resume, roles=teacher)
        self._route("recording-plan", schemas.RecordingPlan, self._recording_plan, roles=teacher)
        self._route("end-session", schemas.Empty, self._end_session, roles=teacher)

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
        limit = self.config.limits.max_message_bytes

        async def on_event(sid: str, data: Any = None) -> Reply:
            conn = self._conns.get(sid)
            log = logging.LoggerAdapter(logger, {"sid": sid, "event": event})
            try:
                if conn is None:
                    raise Unauthorized("not connected")
                if not conn.bucket.allow():
                    raise RateLimited("too many messages; slow down")
                try:
                    size = len(json.dumps(data))
                except (TypeError, ValueError) as exc:
                    raise InvalidMessage("message is not JSON") from exc
                if size > limit:
                    raise MessageTooLarge(f"message of {size} bytes exceeds {limit}")
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
                reply = await handler(conn, message)
                return {"ok": True, **reply}
            except SidecoachError as exc:
                log.info("refused %s: %s (%s)", event, exc.message, exc.code)
                return error_reply(exc)
            except Exception:
                log.exception("error handling %s", event)
                return error_reply(SidecoachError("internal error"))

        self.sio.on(event, on_event)

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        limits = self.config.limits
        self._conns[sid] = Connection(
            sid, TokenBucket(limits.messages_per_second, limits.message_burst)
        )

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self._conns.pop(sid, None)
        if conn is not None and conn.session is not None and conn.participant is not None:
            self._sid_of.pop(conn.participant.id, None)
            await conn.session.leave(conn.participant.id, reason="disconnected")

    async def _on_unknown(self, event: str, sid: str, data: Any = None) -> Reply:
        return error_reply(InvalidMessage(f"unknown event {event[:40]!r}", code="unknown_event"))

    # -- handlers -------------------------------------------------------

    async def _join(self, conn: Connection, msg: schemas.Join) -> Reply:
        if conn.participant is not None:
            raise SidecoachError("already joined", code="already_joined")
        claims = verify_invite(self.config.secret, msg.token)
        if msg.sessionId is not None and msg.sessionId != claims.session_id:
            raise Forbidden("this invite is for another session", code="wrong_session")
        session = await self.manager.open(claims.session_id)
        pid = new_participant_id()
        self._sid_of[pid] = conn.sid
        try:
            participant = await session.join(
                claims.role, msg.name or claims.name, participant_id=pid, invite_id=claims.invite_id
            )
        except BaseException:
            self._sid_of.pop(pid, None)
            raise
        conn.session, conn.participant = session, participant
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
        }

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
        await participant.peer.handle_answer(msg.negotiationId, msg.sdp)
        return {}

    async def _leave(self, conn: Connection, msg: schemas.Empty) -> Reply:
        session, participant = self._joined(conn)
        conn.session = conn.participant = None
        self._sid_of.pop(participant.id, None)
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
        await self.manager.end_session(session.id, reason=f"ended by {participant.name}")
        return {}

    async def close(self) -> None:
        await self.manager.close()
