"""SessionManager: the sessions live on this node, loaded from the store on
first join and closed when ended or at shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from server.config import Config
from server.errors import SessionEnded
from server.recording.catalog import RecordingCatalog
from server.roles import SessionState
from server.session import Notifier, Session
from server.store import SessionStore

logger = logging.getLogger(__name__)


class SessionManager:
    """Implements ``http_api.SessionControl``."""

    def __init__(
        self, config: Config, store: SessionStore, catalog: RecordingCatalog, notifier: Notifier
    ) -> None:
        self.config = config
        self.store = store
        self.catalog = catalog
        self.notifier = notifier
        self.sessions: dict[str, Session] = {}
        self._lock = asyncio.Lock()

    async def open(self, session_id: str) -> Session:
        """The live Session for ``session_id``; raises SessionNotFound or
        SessionEnded."""
        async with self._lock:
            session = self.sessions.get(session_id)
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
            )
            self.sessions[session_id] = session
            return session

    def get(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    async def end_session(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is not None:
            await self.notifier.broadcast(session_id, "session-ended", {"sessionId": session_id})
            await session.close()
        await self.store.set_state(session_id, SessionState.ENDED, at=time.time())
        logger.info("session %s ended", session_id)

    def live_summary(self, session_id: str) -> dict[str, Any] | None:
        session = self.sessions.get(session_id)
        return session.summary() if session is not None else None

    async def close(self) -> None:
        for session in list(self.sessions.values()):
            await session.close()
        self.sessions.clear()
