"""A data directory written by the previous release (five files: sessions,
the recordings catalog, comments, a Redis store's mirror, the audit log)
is migrated into the one database at start-up, without loss; twice is the
same as once; two nodes starting together on it migrate once."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from server.core.roles import SessionState
from server.recording.catalog import RecordingCatalog
from server.recording.comments import CommentStore
from server.storage.audit import AuditLog
from server.storage.database import DB_FILE_NAME, head_revision
from server.storage.legacy import open_database
from server.storage.lessons import SqlSessionStore
from server.storage.sessions import SessionSettings

# the previous release's schemas, as its modules made them (sqlite_sessions.py,
# recording/catalog.py, recording/comments.py, cluster/redis_store.py)
SESSIONS_V1 = """CREATE TABLE sessions (id TEXT PRIMARY KEY, title TEXT NOT NULL,
 teacher_name TEXT NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL, scheduled_for REAL,
 started_at REAL, ended_at REAL, settings TEXT NOT NULL)"""
SESSIONS_ADDED = [
    "ALTER TABLE sessions ADD COLUMN recording_decisions TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'lesson'",
    "ALTER TABLE sessions ADD COLUMN recording_id TEXT",
]
CATALOG_V1 = """CREATE TABLE recordings (id TEXT PRIMARY KEY, session_id TEXT NOT NULL,
 directory TEXT NOT NULL, state TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL,
 duration_ms INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0)"""
CATALOG_ADDED = [
    "ALTER TABLE recordings ADD COLUMN deleted_at REAL",
    "ALTER TABLE recordings ADD COLUMN deleted_by TEXT",
    "ALTER TABLE recordings ADD COLUMN node TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE recordings ADD COLUMN series TEXT",
    "ALTER TABLE recordings ADD COLUMN part INTEGER NOT NULL DEFAULT 1",
]
COMMENTS = """CREATE TABLE comments (id TEXT PRIMARY KEY, recording_id TEXT NOT NULL,
 parent_id TEXT, t_ms INTEGER NOT NULL, text TEXT NOT NULL, tag TEXT, visibility TEXT NOT NULL,
 author_invite TEXT, author_name TEXT NOT NULL, author_role TEXT NOT NULL,
 created_at REAL NOT NULL, from_note TEXT)"""
MIRROR = "CREATE TABLE mirror (id TEXT PRIMARY KEY, record TEXT NOT NULL)"

SETTINGS = {
    "recording": False,
    "whisper_single": True,
    "prompts": ["Wait time"],
    "tally_categories": ["OTR", "BSP"],
}
DECISION = {"recording": False, "by_role": "teacher", "by_name": "Ms Rivera", "at": 1700000100.0}


def write_previous_release(data: Path, *, newest: bool) -> None:
    """The files the previous release leaves (``newest``: with every column
    it ever added; else its first schema)."""
    data.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(data / "sidecoach.sqlite3")
    db.execute(SESSIONS_V1)
    if newest:
        for sql in SESSIONS_ADDED:
            db.execute(sql)
        db.execute(
            "INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                "sLesson1",
                "Fractions",
                "Ms Rivera",
                "ended",
                1700000000.0,
                None,
                1700000050.0,
                1700003000.0,
                json.dumps(SETTINGS),
                json.dumps([DECISION]),
                "lesson",
                None,
            ),
        )
        db.execute(
            "INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                "sDebrief1",
                "Debrief",
                "Ms Rivera",
                "scheduled",
                1700004000.0,
                1700090000.0,
                None,
                None,
                json.dumps({}),
                "[]",
                "debrief",
                "rec-1",
            ),
        )
    else:
        db.execute(
            "INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?)",
            (
                "sOld1",
                "Old lesson",
                "Mr Okafor",
                "live",
                1600000000.0,
                None,
                1600000010.0,
                None,
                json.dumps({"recording": True}),
            ),
        )
    db.commit()
    db.close()
    cat = sqlite3.connect(data / "recordings.sqlite3")
    cat.execute(CATALOG_V1)
    if newest:
        for sql in CATALOG_ADDED:
            cat.execute(sql)
        cat.execute(
            "INSERT INTO recordings VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                "rec-1",
                "sLesson1",
                str(data / "recordings/sLesson1/rec-1"),
                "finalized",
                1700000050.0,
                1700003000.0,
                2950000,
                12345,
                None,
                None,
                "node-a",
                None,
                1,
            ),
        )
    else:
        cat.execute(
            "INSERT INTO recordings VALUES (?,?,?,?,?,?,?,?)",
            (
                "rec-old",
                "sOld1",
                str(data / "recordings/sOld1/rec-old"),
                "recording",
                1600000010.0,
                None,
                0,
                0,
            ),
        )
    cat.commit()
    cat.close()
    if not newest:
        return
    com = sqlite3.connect(data / "comments.sqlite3")
    com.execute(COMMENTS)
    com.execute(
        "INSERT INTO comments VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            "m-1",
            "rec-1",
            None,
            4200,
            "Nice wait time",
            "Wait time",
            "team",
            "i-abc",
            "Ms Rivera",
            "coach",
            1700005000.0,
            None,
        ),
    )
    com.commit()
    com.close()
    mirror = sqlite3.connect(data / "session-mirror.sqlite3")
    mirror.execute(MIRROR)
    record = {
        "id": "sMirror1",
        "title": "From Redis",
        "teacher_name": "Mrs Chen",
        "state": "scheduled",
        "created_at": 1700006000.0,
        "scheduled_for": None,
        "started_at": None,
        "ended_at": None,
        "settings": SETTINGS,
    }
    mirror.execute("INSERT INTO mirror VALUES (?, ?)", ("sMirror1", json.dumps(record)))
    mirror.commit()
    mirror.close()
    lines = [
        {
            "at": 1700005500.0,
            "action": "read",
            "recording": "rec-1",
            "session": "sLesson1",
            "who": {"role": "coach"},
            "bytes": 100,
        },
        {"at": 1700005600.0, "action": "delete", "recording": "rec-2", "who": {"admin": True}},
    ]
    (data / "audit.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"torn')


async def test_a_previous_release_data_directory_is_migrated_without_loss(tmp_path: Path) -> None:
    write_previous_release(tmp_path, newest=True)
    db = await open_database(tmp_path)
    try:
        store = SqlSessionStore(db)
        lesson = await store.get("sLesson1")
        assert (lesson.title, lesson.state, lesson.started_at) == (
            "Fractions",
            SessionState.ENDED,
            1700000050.0,
        )
        assert lesson.settings == SessionSettings.from_json(SETTINGS)
        assert lesson.recording_decisions[0].to_json() == DECISION
        debrief = await store.get("sDebrief1")
        assert (str(debrief.kind), debrief.recording_id) == ("debrief", "rec-1")
        assert (await store.get("sMirror1")).teacher_name == "Mrs Chen"
        row = await RecordingCatalog(db).get("rec-1")
        assert row is not None and (row.node, row.bytes, row.duration_ms) == (
            "node-a",
            12345,
            2950000,
        )
        comments = await CommentStore(db).for_recording("rec-1")
        assert [(c.id, c.text, c.t_ms, c.author_invite) for c in comments] == [
            ("m-1", "Nice wait time", 4200, "i-abc")
        ]
        audit = await AuditLog(db).query()
        assert [e["action"] for e in audit] == ["delete", "read"]  # newest first, torn line skipped
        assert (await AuditLog(db).query(recording="rec-1"))[0]["bytes"] == 100
        # new writes go to the database, next to what was imported
        await store.set_state("sDebrief1", SessionState.LIVE, at=1700090001.0)
    finally:
        await db.close()
    # a second start imports nothing twice and keeps the new write
    again = await open_database(tmp_path)
    try:
        records = await SqlSessionStore(again).list()
        assert sorted(r.id for r in records) == ["sDebrief1", "sLesson1", "sMirror1"]
        assert (await SqlSessionStore(again).get("sDebrief1")).state is SessionState.LIVE
        assert len(await AuditLog(again).query()) == 2
    finally:
        await again.close()
    # the old files are left as they were
    assert (tmp_path / "sidecoach.sqlite3").exists() and (tmp_path / "audit.jsonl").exists()


async def test_the_first_release_schema_gets_its_defaults(tmp_path: Path) -> None:
    write_previous_release(tmp_path, newest=False)
    db = await open_database(tmp_path)
    try:
        old = await SqlSessionStore(db).get("sOld1")
        assert (str(old.kind), old.recording_decisions, old.recording_id) == ("lesson", (), None)
        assert old.settings.prompts == SessionSettings().prompts
        row = await RecordingCatalog(db).get("rec-old")
        assert row is not None and (row.node, row.part, row.deleted_at) == ("", 1, None)
    finally:
        await db.close()


@pytest.mark.parametrize("nodes", [2, 3])
async def test_nodes_starting_together_migrate_once(tmp_path: Path, nodes: int) -> None:
    write_previous_release(tmp_path, newest=True)
    dbs = await asyncio.gather(*(open_database(tmp_path) for _ in range(nodes)))
    try:
        assert len(await SqlSessionStore(dbs[0]).list()) == 3
        assert len(await AuditLog(dbs[-1]).query()) == 2
        async with dbs[0].engine.connect() as conn:
            from sqlalchemy import text

            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert version == [(head_revision(),)]
    finally:
        for db in dbs:
            await db.close()
    assert (tmp_path / DB_FILE_NAME).exists()


async def test_the_migrations_make_exactly_the_models(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from server.storage.models import Base

    db = await open_database(tmp_path)
    try:
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
            )
    finally:
        await db.close()
    assert diff == []
