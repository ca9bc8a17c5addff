"""The one database on a real PostgreSQL server (started by the test on a
loopback port): the same migrations, the legacy import, the stores, and
nodes migrating together under the advisory lock."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.core.roles import SessionState
from server.recording.catalog import RecordingCatalog
from server.recording.comments import CommentStore
from server.storage.audit import AuditLog
from server.storage.legacy import open_database
from server.storage.lessons import SqlSessionStore
from server.storage.sessions import SessionSettings
from testkit.postgres import PostgresProc, postgres_unavailable
from tests.test_migration import write_previous_release

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(postgres_unavailable() is not None, reason=str(postgres_unavailable())),
]


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresProc]:
    server = PostgresProc()
    try:
        yield server
    finally:
        server.stop()


async def test_the_database_on_postgresql(pg: PostgresProc, tmp_path: Path) -> None:
    url = await pg.create("basics")
    write_previous_release(tmp_path, newest=True)
    dbs = await asyncio.gather(*(open_database(tmp_path, url) for _ in range(3)))
    try:
        assert {db.dialect for db in dbs} == {"postgresql"}
        store = SqlSessionStore(dbs[0])
        assert len(await store.list()) == 3  # imported once, by one of the three
        rec = await store.create(title="On PG", teacher_name="T", settings=SessionSettings())
        live = await SqlSessionStore(dbs[1]).set_state(rec.id, SessionState.LIVE, at=5.0)
        assert live.started_at == 5.0
        assert (await store.get(rec.id)).state is SessionState.LIVE
        assert (await RecordingCatalog(dbs[2]).get("rec-1")) is not None
        assert len(await CommentStore(dbs[1]).for_recording("rec-1")) == 1
        assert len(await AuditLog(dbs[2]).query()) == 2
    finally:
        for db in dbs:
            await db.close()


async def test_state_changes_race_and_one_wins(pg: PostgresProc, tmp_path: Path) -> None:
    url = await pg.create("races")
    a, b = await open_database(tmp_path / "a", url), await open_database(tmp_path / "b", url)
    try:
        rec = await SqlSessionStore(a).create(
            title="R", teacher_name="T", settings=SessionSettings()
        )
        results = await asyncio.gather(
            SqlSessionStore(a).set_state(rec.id, SessionState.LIVE, at=1.0),
            SqlSessionStore(b).set_state(rec.id, SessionState.LIVE, at=2.0),
        )
        assert results[0].started_at == results[1].started_at  # the second saw the first
    finally:
        await a.close()
        await b.close()
