"""SessionManager: the sessions live on this node. It opens a Session on
its first join, ends sessions (for an admin, the teacher, or by themselves
when everyone has left or nobody ever came), and drains them on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from server.access.policy import AccessPolicy
from server.core.config import Config
from server.core.errors import SessionEnded, SessionNotFound, Unavailable
from server.core.roles import SessionState
from server.core.tasks import TaskOwner
from server.live.deployment import Deployment
from server.live.session import Notifier, Removal, Session
from server.recording.catalog import RecordingCatalog
from server.recording.comments import Comment
from server.storage.sessions import SessionRecord, SessionStore

logger = logging.getLogger(__name__)


class ServerDraining(Unavailable):
    """The server is shutting down: try again in a moment (another node, or
    this one once restarted, will take the join)."""

    code = "server_draining"


class SessionManager:
    """The sessions live on this node."""

    def __init__(
        self,
        config: Config,
        store: SessionStore,
        catalog: RecordingCatalog,
        notifier: Notifier,
        policy: AccessPolicy,
        deployment: Deployment,
    ) -> None:
        self.config = config
        self.store = store
        self.catalog = catalog
        self.notifier = notifier
        self.policy = policy
        self.deployment = deployment
        self.sessions: dict[str, Session] = {}
        self.draining = False
        #: False once draining began: sessions live here go on, no new ones open
        self.accepting = True
        self._lock = asyncio.Lock()
        self._tasks = TaskOwner("sessions")
        #: LIVE in the store but hosted nowhere (e.g. after a restart):
        #: session id -> monotonic time first seen so
        self._orphans: dict[str, float] = {}

    # -- opening and ending --------------------------------------------------

    async def open(self, session_id: str) -> Session:
        """The live Session for ``session_id``; raises SessionNotFound,
        SessionEnded or ServerDraining."""
        async with self._lock:
            session = self.sessions.get(session_id)
            if self.draining or (not self.accepting and session is None):
                raise ServerDraining("the server is restarting; trying again shortly")
            if session is not None and not session.closed:
                return session
            record = await self.store.get(session_id)
            if record.state == SessionState.ENDED:
                raise SessionEnded("this session has ended")
            session = Session(
                record,
                config=self.config,
                store=self.store,
                catalog=self.catalog,
                notifier=self.notifier,
                policy=self.policy,
            )
            await self.deployment.opening(session)
            self.sessions[session_id] = session
            self._orphans.pop(session_id, None)
            return session

    def get(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    async def end_session(self, session_id: str, *, reason: str = "ended") -> None:
        """Mark the session ended (first, under the lock, so no join can
        reopen it), then tell everyone and close it: the recording is
        finalized at once."""
        async with self._lock:
            session = self.sessions.pop(session_id, None)
            if session is not None:
                session.ending = True
            record = await self.store.get(session_id)
            if record.state != SessionState.ENDED:
                await self.store.set_state(session_id, SessionState.ENDED, at=time.time())
            self._orphans.pop(session_id, None)
        if session is not None:
            await self.notifier.broadcast(
                session_id, "session-ended", {"sessionId": session_id, "reason": reason}
            )
            await session.close(reason="session ended")
        logger.info("session %s ended (%s)", session_id, reason)

    async def comment_added(self, recording_id: str, comment: Comment) -> None:
        """A review comment was added: debriefs watching that recording show
        it live (to the members the access policy lets read it)."""
        for session in list(self.sessions.values()):
            if session.watches_recording(recording_id):
                await session.comment_added(comment)

    def live_summary(self, session_id: str) -> dict[str, Any] | None:
        session = self.sessions.get(session_id)
        return session.summary() if session is not None else None

    # -- sessions that end by themselves ---------------------------------------

    def start(self) -> None:
        self._tasks.spawn(self._lifecycle_loop(), name="session lifecycle")

    async def _lifecycle_loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                logger.exception("session lifecycle sweep failed; will retry")
            await asyncio.sleep(self.config.lifecycle_interval_s)

    async def sweep(self) -> list[str]:
        """End what should end: live sessions everyone left (and nobody
        rejoined within the departure timeout), live sessions hosted nowhere
        for that long, scheduled sessions nobody joined before they expired.
        Returns the ids ended."""
        limits = self.config.limits
        now = time.monotonic()
        ended: list[str] = []
        for session in list(self.sessions.values()):
            idle = session.empty_since
            if idle is None or now - idle < limits.departure_timeout_s or session.ending:
                continue
            if session.record.state == SessionState.LIVE:
                await self.end_session(session.id, reason="everyone left")
                ended.append(session.id)
            else:  # opened, but nobody ever got in: forget it, it stays scheduled
                async with self._lock:
                    unused = self.sessions.get(session.id) is session and not session.participants
                    if unused:
                        del self.sessions[session.id]
                        session.ending = True
                if unused:
                    await session.close(reason="unused")
        records = await self.store.list([SessionState.LIVE, SessionState.SCHEDULED])
        not_ended = {r.id for r in records}
        for session_id in [s for s in self.sessions if s not in not_ended]:
            # ended in the store by someone else (another node, the CLI)
            try:
                state = (await self.store.get(session_id)).state
            except SessionNotFound:  # a record the store does not believe: leave it be
                continue
            if state == SessionState.ENDED:
                await self.end_session(session_id, reason="ended elsewhere")
                ended.append(session_id)
        live_ids = {r.id for r in records if r.state == SessionState.LIVE}
        for gone in set(self._orphans) - live_ids:
            del self._orphans[gone]
        for record in records:
            if record.id in self.sessions or self.hosted_elsewhere(record.id):
                continue
            if record.state == SessionState.LIVE:
                first_seen = self._orphans.setdefault(record.id, now)
                if now - first_seen >= limits.departure_timeout_s:
                    await self.end_session(record.id, reason="nobody came back")
                    ended.append(record.id)
            elif self._expired(record):
                await self.end_session(record.id, reason="expired before anyone joined")
                ended.append(record.id)
        return ended

    def _expired(self, record: SessionRecord) -> bool:
        start = record.scheduled_for or record.created_at
        return time.time() >= start + self.config.limits.session_expiry_s

    def hosted_elsewhere(self, session_id: str) -> bool:
        """Whether another node hosts this session (single node: never)."""
        return self.deployment.hosted_elsewhere(session_id)

    async def release(self, session_id: str, message: str) -> None:
        """Stop hosting a session here without ending it (it lives on
        another node): its participants are told (``removed``, code
        ``moved``) and rejoin there; its recording part is finalized."""
        async with self._lock:
            session = self.sessions.pop(session_id, None)
        if session is None:
            return
        for participant_id in list(session.participants):
            await session.remove(participant_id, code=Removal.MOVED, message=message)
        await session.close(reason="moved to another node")
        logger.warning("session %s released: %s", session_id, message)

    # -- shutting down ------------------------------------------------------------

    def stop_new_sessions(self) -> None:
        """Draining began: sessions live here go on (and take rejoins), no
        new session opens here."""
        if self.accepting:
            self.accepting = False
            logger.info("draining: no new sessions on this node (%d live)", len(self.sessions))

    async def drain(self) -> float:
        """Refuse new joins, tell every live session, finalize every
        recording; the sessions stay live in the store (their pages rejoin
        when the server is back). Returns the seconds it took."""
        started = time.monotonic()
        async with self._lock:
            self.draining = True
            sessions = list(self.sessions.values())
            self.sessions.clear()
        for session in sessions:
            await self.notifier.broadcast(
                session.id,
                "server-draining",
                {"message": "The server is restarting. You will be reconnected automatically."},
            )
        closing = asyncio.gather(*(s.close(reason="server restarting") for s in sessions))
        try:
            await asyncio.wait_for(closing, self.config.limits.drain_timeout_s)
        except TimeoutError:
            logger.error(
                "drain: sessions still closing after %.0f s; their recordings are"
                " recovered at the next start",
                self.config.limits.drain_timeout_s,
            )
        took = time.monotonic() - started
        logger.info("drained %d live sessions in %.2f s", len(sessions), took)
        return took

    async def close(self) -> None:
        await self._tasks.aclose()
        for session in list(self.sessions.values()):
            await session.close(reason="server stopped")
        self.sessions.clear()
