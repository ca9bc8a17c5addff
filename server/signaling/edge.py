"""The socket.io edge: connections, joins, and the ``Notifier`` a session
talks to its participants through.

Packets that are not messages at all are closed by the transport
(``transport.py``) and counted here; every message is handed to the one
``Dispatcher`` (``dispatcher.py``), whose routes live in ``routes/``. This
module implements ``live.session.Notifier`` and the transport's
``EdgeHooks``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from server.access.policy import AccessPolicy
from server.core.config import Config, Limits
from server.core.errors import (
    AlreadyJoined,
    Disconnected,
    RateLimited,
    Unauthorized,
    WrongSession,
)
from server.core.ratelimit import LogLimiter, TokenBucket
from server.core.tasks import TaskOwner
from server.core.tokens import InviteClaims, verify_invite
from server.core.turn import ice_config_for
from server.live.check import Checks
from server.live.deployment import Deployment
from server.live.manager import SessionManager
from server.live.session import Participant, Removal, Session, new_participant_id
from server.ops.metrics import Metrics
from server.signaling import schemas
from server.signaling.admission import TIMEOUT, Admission
from server.signaling.dispatcher import Connection, Dispatcher, Reply, error_reply, joined
from server.signaling.routes import check, coaching, debrief, lesson, media
from server.signaling.transport import EdgeServer

logger = logging.getLogger(__name__)

#: engine.io refuses (and disconnects on) packets above this; our own,
#: smaller ``limits.max_message_bytes`` answers with an error instead
TRANSPORT_HARD_LIMIT_BYTES = 1_000_000


class Signaling:
    def __init__(
        self,
        config: Config,
        policy: AccessPolicy,
        deployment: Deployment,
        metrics: Metrics | None = None,
    ):
        self.config = config
        self.metrics = metrics if metrics is not None else Metrics()
        self.deployment = deployment
        self.sio = EdgeServer(
            self,
            sid_prefix=deployment.sid_prefix,
            close_grace_s=config.limits.socket_close_grace_s,
            async_mode="aiohttp",
            max_http_buffer_size=TRANSPORT_HARD_LIMIT_BYTES,
            logger=False,
            engineio_logger=False,
        )
        self._manager: SessionManager | None = None
        self._conns: dict[str, Connection] = {}
        self._sid_of: dict[str, str] = {}
        self.dispatcher = Dispatcher(config.limits, policy, self.metrics)
        self._admission = Admission(config.limits)
        self._warnings = LogLimiter(config.limits.warnings_per_minute)
        self._tasks = TaskOwner("signaling")
        #: this node's pre-lesson checks (the /check page)
        self.checks = Checks(config)
        self._sweeping = False
        self._checking_logins = False
        #: whether a signed-in person's login session is still alive (set by
        #: the app; None: invites of persons are refused)
        self.login_alive: Callable[[str], Awaitable[bool]] | None = None
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)

    @property
    def manager(self) -> SessionManager:
        assert self._manager is not None, "bind() first"
        return self._manager

    def bind(self, manager: SessionManager) -> None:
        """The sessions of this node: the routes that need them are added."""
        self._manager = manager
        d = self.dispatcher
        d.add("join", schemas.Join, self._join, needs_join=False)
        d.add("leave", schemas.Empty, self._leave)
        media.register(d, self.config.limits)
        coaching.register(d)
        lesson.register(d, manager)
        debrief.register(d)
        check.register(d, self.checks, self, self.config.limits)

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

    async def removed(
        self, participant_id: str, code: str, message: str, detail: dict[str, str] | None = None
    ) -> None:
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
        payload = {**(detail or {}), "code": code, "message": message}
        await self.sio.emit("removed", payload, to=conn.sid)

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

    @property
    def unauthenticated(self) -> int:
        """Sockets admitted and not joined (counted until their transport is gone)."""
        return self._admission.pending

    def malformed(self, sid: str, reason: str, detail: str = "") -> None:
        self.metrics.signaling_malformed.labels(reason).inc()
        self._warn("closed socket %s: %s %s", sid, reason, detail)

    async def route(self, sid: str, eio_sid: str, remote: str, data: Any) -> Any:
        """A ``join`` on a socket not joined here: may hand it to another node."""
        conn = self._conns.get(sid)
        if conn is None or conn.participant or conn.joining:
            return None
        if not conn.bucket.allow():  # placement may ask Redis: a flood must not
            return error_reply(RateLimited("too many messages; slow down"))
        routed = await self.deployment.route_join(data, eio_sid, remote)
        if routed is not None and not isinstance(routed, dict):
            self._admission.joined(eio_sid, True)  # the session's node admits it now
        return routed

    async def dispatch(self, sid: str, data: Any, size: int) -> Reply:
        """One message from socket ``sid``; always answered, never raises."""
        return await self.dispatcher.dispatch(self._conns.get(sid), data, size)

    # -- CheckEdge (routes/check.py) -------------------------------------

    def remote_of_sid(self, sid: str) -> str:
        eio_sid = self.sio.eio_sid(sid)
        return self.sio.remote_of(eio_sid) if eio_sid is not None else "unknown"

    async def emit_to_sid(self, sid: str, event: str, payload: dict[str, Any]) -> None:
        await self.sio.emit(event, payload, to=sid)

    def hold(self, sid: str, held: bool) -> None:
        conn = self._conns.get(sid)
        if conn is not None and conn.participant is None:
            self._set_joined(sid, held)

    # -- plumbing -------------------------------------------------------

    def _warn(self, msg: str, *args: Any) -> None:
        allowed, suppressed = self._warnings.allow()
        if not allowed:
            self.metrics.log_lines_suppressed.inc()
        elif suppressed:
            logger.warning(msg + " (and %d more not logged)", *args, suppressed)
        else:
            logger.warning(msg, *args)

    def _set_joined(self, sid: str, is_joined: bool) -> None:
        eio_sid = self.sio.eio_sid(sid)
        if eio_sid is not None:
            self._admission.joined(eio_sid, is_joined)

    async def _close_unauthenticated(self) -> None:
        interval = max(0.05, min(1.0, self.config.limits.unauthenticated_timeout_s / 4))
        while True:
            await asyncio.sleep(interval)
            for eio_sid in self._admission.expired():
                self._admission.closing(eio_sid)  # counted until its transport is gone
                self.metrics.sockets_refused.labels(TIMEOUT).inc()
                await self.sio.close_connection(eio_sid)

    async def _check_logins(self) -> None:
        """While signed-in persons are in lessons here: every
        ``login_recheck_s``, remove those whose login session ended (signed
        out or disabled on another node). Ends when none is left."""
        try:
            while True:
                await asyncio.sleep(self.config.limits.login_recheck_s)
                joined = {
                    (c.participant.invite_id, c.login)
                    for c in self._conns.values()
                    if c.login and c.participant is not None
                }
                if not joined:
                    return
                for invite_id, login in joined:
                    if self.login_alive is None or not await self.login_alive(login):
                        await self.signed_out(invite_id, login)
        finally:
            self._checking_logins = False

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if sid in self._conns:  # only the transport connects; never twice
            return
        limits: Limits = self.config.limits
        self._conns[sid] = Connection(
            sid, TokenBucket(limits.messages_per_second, limits.message_burst)
        )

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self._conns.pop(sid, None)
        if conn is not None and conn.check is not None:
            await conn.check.close()
        if conn is not None and conn.session is not None and conn.participant is not None:
            self._sid_of.pop(conn.participant.id, None)
            await conn.session.leave(conn.participant.id, reason="disconnected")

    # -- handlers -------------------------------------------------------

    async def _join(self, conn: Connection, msg: schemas.Join) -> Reply:
        if conn.participant is not None or conn.joining:
            raise AlreadyJoined("already joined")
        conn.joining = True
        try:
            claims, session, participant = await self._join_session(conn, msg)
        finally:
            conn.joining = False
        conn.session, conn.participant = session, participant
        self._set_joined(conn.sid, True)
        if conn.login and not self._checking_logins:
            self._checking_logins = True
            self._tasks.spawn(self._check_logins(), name="login sessions")
        await self.sio.enter_room(conn.sid, session.id)
        return {
            "participantId": participant.id,
            "role": str(participant.role),
            "name": participant.name,
            "session": session.record.to_json(),
            "clockMs": session.clock.now_ms(),
            **ice_config_for(self.config, claims),
            "participants": [
                p.describe() for p in session.participants.values() if p.id != participant.id
            ],
            "producers": [session.describe_producer(p) for p in session.router.producers.values()],
            "coaching": session.coaching_state(participant),
            "permissions": session.policy.permissions(participant.reader),
            "recording": session.recording_state,
            "owner": participant.owner,
            "debrief": session.debrief.state() if session.debrief is not None else None,
        }

    async def _join_session(
        self, conn: Connection, msg: schemas.Join
    ) -> tuple[InviteClaims, Session, Participant]:
        claims = verify_invite(self.config.secret, msg.token)
        if msg.sessionId is not None and msg.sessionId != claims.session_id:
            raise WrongSession("this invite is for another session")
        if claims.login and not (self.login_alive and await self.login_alive(claims.login)):
            raise Unauthorized("signed out: sign in again from your home page")
        conn.login = claims.login
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
            raise Disconnected("the connection closed during the join")
        return claims, session, participant

    async def _leave(self, conn: Connection, msg: schemas.Empty) -> Reply:
        session, participant = joined(conn)
        conn.session = conn.participant = None
        self._sid_of.pop(participant.id, None)
        self._set_joined(conn.sid, False)
        await self.sio.leave_room(conn.sid, session.id)
        await session.leave(participant.id, reason="left")
        return {}

    async def signed_out(self, invite_id: str, login: str | None = None) -> int:
        """Remove the participants a person joined as (``invite_id``
        ``p-<person>``), of one login session or of all (``login`` None):
        they signed out or were disabled. Returns how many."""
        gone = [
            c
            for c in list(self._conns.values())
            if c.participant is not None
            and c.participant.invite_id == invite_id
            and c.login
            and (login is None or c.login == login)
        ]
        for c in gone:
            if c.session is not None and c.participant is not None:
                await c.session.remove(
                    c.participant.id, code=Removal.SIGNED_OUT, message="you were signed out"
                )
        return len(gone)

    async def close(self) -> None:
        await self.checks.close()
        await self.manager.close()
        await self._tasks.aclose()
        await self.sio.aclose()
