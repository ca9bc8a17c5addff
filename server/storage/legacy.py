"""Copy in, once, what an earlier release kept in separate files of the
data directory: ``sidecoach.sqlite3`` (sessions), ``recordings.sqlite3``
(the catalog), ``comments.sqlite3``, ``session-mirror.sqlite3`` (a Redis
store's local mirror) and ``audit.jsonl``. Columns an older file lacks take
their defaults; rows already in the database are kept as they are. Each
file is recorded in ``legacy_imports`` and never read again; the files stay
where they are (nothing is lost)."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy import insert as insert_into
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from server.storage.database import Database, database_url
from server.storage.models import AuditEntry, Comment, LegacyImport, Lesson, Recording

logger = logging.getLogger(__name__)

SESSIONS_FILE = "sidecoach.sqlite3"
CATALOG_FILE = "recordings.sqlite3"
COMMENTS_FILE = "comments.sqlite3"
MIRROR_FILE = "session-mirror.sqlite3"
AUDIT_FILE = "audit.jsonl"
#: rows inserted per statement
BATCH = 500

Rows = list[dict[str, Any]]


def _read_table(path: Path, table: str, defaults: dict[str, Any]) -> Rows:
    """Every row of ``table`` in a legacy file, read only; missing columns
    take ``defaults``."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        have = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        if not have:
            return []
        cur = conn.execute(f"SELECT {', '.join(have)} FROM {table}")
        return [{**defaults, **dict(zip(have, row, strict=True))} for row in cur.fetchall()]
    finally:
        conn.close()


def _sessions(path: Path) -> Rows:
    rows = _read_table(
        path, "sessions", {"recording_decisions": "[]", "kind": "lesson", "recording_id": None}
    )
    for r in rows:
        r["recording_decisions"] = r["recording_decisions"] or "[]"
        r["kind"] = r["kind"] or "lesson"
    return rows


def _mirror(path: Path) -> Rows:
    rows = []
    for r in _read_table(path, "mirror", {}):
        data = json.loads(r["record"])
        rows.append(
            {
                **{
                    k: data.get(k)
                    for k in (
                        "id",
                        "title",
                        "teacher_name",
                        "state",
                        "created_at",
                        "scheduled_for",
                        "started_at",
                        "ended_at",
                        "recording_id",
                    )
                },
                "settings": json.dumps(data.get("settings") or {}),
                "recording_decisions": json.dumps(data.get("recording_decisions") or []),
                "kind": data.get("kind") or "lesson",
            }
        )
    return rows


def _recordings(path: Path) -> Rows:
    rows = _read_table(
        path,
        "recordings",
        {"deleted_at": None, "deleted_by": None, "node": "", "series": None, "part": 1},
    )
    for r in rows:
        r["node"] = r["node"] or ""
    return rows


def _comments(path: Path) -> Rows:
    return _read_table(path, "comments", {"from_note": None})


def _audit(path: Path) -> Rows:
    rows = []
    for line in path.read_bytes().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a torn last line after a crash
        if isinstance(entry, dict):
            rows.append(audit_row(entry))
    return rows


def audit_row(entry: dict[str, Any]) -> dict[str, Any]:
    """An audit entry (a JSON object with ``at`` and ``action``) as a row."""

    def opt(key: str) -> str | None:
        value = entry.get(key)
        return None if value is None else str(value)

    return {
        "at": float(entry.get("at") or 0.0),
        "action": str(entry.get("action") or "")[:40],
        "recording": opt("recording"),
        "session": opt("session"),
        "person_id": opt("person"),
        "entry": json.dumps(entry, separators=(",", ":")),
    }


#: file -> (its reader, the table its rows go to)
SOURCES: dict[str, tuple[Callable[[Path], Rows], Table]] = {
    SESSIONS_FILE: (_sessions, Lesson.__table__),  # type: ignore[dict-item]
    MIRROR_FILE: (_mirror, Lesson.__table__),  # type: ignore[dict-item]
    CATALOG_FILE: (_recordings, Recording.__table__),  # type: ignore[dict-item]
    COMMENTS_FILE: (_comments, Comment.__table__),  # type: ignore[dict-item]
    AUDIT_FILE: (_audit, AuditEntry.__table__),  # type: ignore[dict-item]
}


async def _insert_ignoring_present(conn: AsyncConnection, table: Table, rows: Rows) -> None:
    names = {c.name for c in table.columns}
    rows = [{k: v for k, v in r.items() if k in names} for r in rows]
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    for i in range(0, len(rows), BATCH):
        stmt = insert(table).values(rows[i : i + BATCH])
        if table.name != "audit":
            stmt = stmt.on_conflict_do_nothing()
        await conn.execute(stmt)


async def import_legacy_files(db: Database, data_dir: Path) -> None:
    present = {name: data_dir / name for name in SOURCES if (data_dir / name).is_file()}
    if not present:
        return
    async with db.locked() as conn:
        done = set((await conn.execute(select(LegacyImport.name))).scalars())
        for name, path in present.items():
            if name in done:
                continue
            reader, table = SOURCES[name]
            rows = await asyncio.to_thread(reader, path)
            await _insert_ignoring_present(conn, table, rows)
            await conn.execute(
                insert_into(LegacyImport).values(name=name, at=time.time(), rows=len(rows))
            )
            logger.info("imported %d rows from %s (the file is kept as it was)", len(rows), path)


async def open_database(data_dir: Path, configured_url: str = "") -> Database:
    """The deployment's database for a data directory, migrated, with the
    earlier release's files of ``data_dir`` imported (once)."""
    db = await Database.open(database_url(data_dir, configured_url))
    try:
        await import_legacy_files(db, Path(data_dir))
    except BaseException:
        await db.close()
        raise
    return db
