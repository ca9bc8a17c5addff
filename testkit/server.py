"""A real Sidecoach server in this process, on 127.0.0.1, with its own
data directory, and the handles tests and benchmarks use on it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from server.app import ACCESS_LOG_CLASS, SIGNALING_KEY, create_app, open_store
from server.core.config import Config
from server.core.roles import Role
from server.core.tokens import issue_invite
from server.live.manager import SessionManager
from server.recording.catalog import RecordingCatalog
from server.serve import SHUTDOWN_GRACE_S
from server.storage.lessons import SqlSessionStore
from server.storage.sessions import SessionRecord, SessionSettings
from testkit.peers import Participant, PatternVideoTrack, ToneTrack, wait_for

TEST_SECRET = "test-secret-" + "x" * 40


@dataclass
class LiveServer:
    url: str
    config: Config
    store: SqlSessionStore
    app: web.Application
    catalog: RecordingCatalog

    @property
    def manager(self) -> SessionManager:
        return self.app[SIGNALING_KEY].manager

    async def create_session(
        self, title: str = "Fractions, period 3", **settings: object
    ) -> SessionRecord:
        return await self.store.create(
            title=title,
            teacher_name="Ms. Rivera",
            settings=SessionSettings(**settings),  # type: ignore[arg-type]
        )

    def invite(self, session_id: str, role: Role | str, ttl_s: int = 3600, **kw: object) -> str:
        return issue_invite(TEST_SECRET, session_id, Role(role), ttl_s=ttl_s, **kw)  # type: ignore[arg-type]

    def participant(self, session_id: str, role: Role | str) -> Participant:
        return Participant(self.url, self.invite(session_id, role))

    @asynccontextmanager
    async def classroom(
        self, session_id: str, *, mic: bool = False
    ) -> AsyncIterator[tuple[Participant, Participant]]:
        """A teacher publishing a camera (and a mic) and a coach already
        decoding the picture; both closed afterwards."""
        teacher = self.participant(session_id, "teacher")
        coach = self.participant(session_id, "coach")
        try:
            await teacher.join()
            await teacher.publish(PatternVideoTrack(), "camera")
            if mic:
                await teacher.publish(ToneTrack(), "mic")
            await coach.join()
            await wait_for(lambda: len(coach.received) == (2 if mic else 1))
            video = coach.tracks(source="camera")[0]
            await wait_for(lambda: video.frames > 5, timeout=15)
            yield teacher, coach
        finally:
            await teacher.close()
            await coach.close()


def make_config(tmp_path: Path, **overrides: object) -> Config:
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "data_dir": tmp_path,
        "secret": TEST_SECRET,
        "ice_listen_ips": ("127.0.0.1",),
    }
    return Config(**{**settings, **overrides})  # type: ignore[arg-type]


@asynccontextmanager
async def running_server(config: Config) -> AsyncIterator[LiveServer]:
    logging.getLogger("aioice").setLevel(logging.WARNING)
    store = await open_store(config)
    catalog = RecordingCatalog(store.db)
    app = create_app(config, store, catalog)
    server = TestServer(app, host=config.host, port=config.port or None)
    # as serve() does: a client still connected at the end is not waited on
    await server.start_server(access_log_class=ACCESS_LOG_CLASS, shutdown_timeout=SHUTDOWN_GRACE_S)
    try:
        yield LiveServer(str(server.make_url("/")).rstrip("/"), config, store, app, catalog)
    finally:
        await server.close()
        await catalog.close()
        await store.close()
