"""The embedded ``SessionStore``: SQLite in ``DATA_DIR/sidecoach.sqlite3``,
so scheduled sessions (and the invites minted for them) survive restarts."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from server.core.errors import SessionNotFound
from server.core.roles import SessionState
from server.storage.sessions import (
    RecordingDecision,
    SessionKind,
    SessionRecord,
    SessionSettings,
    new_record,
)
from server.storage.sqlite_worker import SqliteWorker, add_missing_columns

logger = logging.getLogger(__name__)

DB_FILE_NAME = "sidecoach.sqlite3"
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    teacher_name TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    scheduled_for REAL,
    started_at REAL,
    ended_at REAL,
    settings TEXT NOT NULL,
    recording_decisions TEXT NOT NULL DEFAULT '[]',
    kind TEXT NOT NULL DEFAULT 'lesson',
    recording_id TEXT
);
CREATE INDEX IF NOT EXISTS sessions_state ON sessions(state);
"""
#: columns added after the first release: (name, definition) for ALTER TABLE
_ADDED_COLUMNS = (
    ("recording_decisions", "TEXT NOT NULL DEFAULT '[]'"),
    ("kind", "TEXT NOT NULL DEFAULT 'lesson'"),
    ("recording_id", "TEXT"),
)
_COLUMNS = (
    "id, title, teacher_name, state, created_at, scheduled_for, started_at, ended_at, settings,"
    " recording_decisions, kind, recording_id"
)


_NAMES = [c.strip() for c in _COLUMNS.split(",")]


def _row_to_record(row: tuple[Any, ...]) -> SessionRecord:
    data = dict(zip(_NAMES, row, strict=True))
    data["settings"] = json.loads(data["settings"])
    data["recording_decisions"] = json.loads(data["recording_decisions"] or "[]")
    return SessionRecord.from_json(data)


class SqliteSessionStore:
    """SessionStore on one SQLite file (see ``SqliteWorker``)."""

    def __init__(self, db: SqliteWorker) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: Path) -> SqliteSessionStore:
        db = await SqliteWorker.open(path, _SCHEMA)
        await db.run(lambda conn: add_missing_columns(conn, "sessions", _ADDED_COLUMNS))
        return cls(db)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._db.run(fn)

    async def create(
        self,
        *,
        title: str,
        teacher_name: str,
        settings: SessionSettings,
        scheduled_for: float | None = None,
        kind: SessionKind = SessionKind.LESSON,
        recording_id: str | None = None,
    ) -> SessionRecord:
        record = new_record(
            title=title,
            teacher_name=teacher_name,
            settings=settings,
            scheduled_for=scheduled_for,
            kind=kind,
            recording_id=recording_id,
        )

        def _insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.title,
                    record.teacher_name,
                    record.state.value,
                    record.created_at,
                    record.scheduled_for,
                    None,
                    None,
                    json.dumps(settings.to_json()),
                    "[]",
                    str(kind),
                    recording_id,
                ),
            )

        await self._run(_insert)
        logger.info("session %s created: %r", record.id, record.title)
        return record

    async def get(self, session_id: str) -> SessionRecord:
        def _get(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            cur = conn.execute(f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", (session_id,))
            row: tuple[Any, ...] | None = cur.fetchone()
            return row

        row = await self._run(_get)
        if row is None:
            raise SessionNotFound(f"no session {session_id!r}")
        return _row_to_record(row)

    async def list(self, states: Iterable[SessionState] | None = None) -> list[SessionRecord]:
        wanted = None if states is None else [SessionState(s).value for s in states]

        def _list(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            sql = f"SELECT {_COLUMNS} FROM sessions"
            params: list[str] = []
            if wanted is not None:
                if not wanted:
                    return []
                sql += f" WHERE state IN ({', '.join('?' for _ in wanted)})"
                params = wanted
            sql += " ORDER BY created_at, id"
            return list(conn.execute(sql, params).fetchall())

        return [_row_to_record(row) for row in await self._run(_list)]

    async def set_state(self, session_id: str, state: SessionState, *, at: float) -> SessionRecord:
        state = SessionState(state)

        def _set(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            # BEGIN IMMEDIATE: read-check-write is atomic even with other
            # processes (e.g. the CLI) writing the same file.
            conn.execute("BEGIN IMMEDIATE")
            try:
                row: tuple[Any, ...] | None = conn.execute(
                    f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
                ).fetchone()
                if row is None:
                    conn.execute("ROLLBACK")
                    return None
                moved = _row_to_record(row).moved_to(state, at)
                if moved is None:
                    conn.execute("ROLLBACK")
                    return row
                conn.execute(
                    "UPDATE sessions SET state = ?, started_at = ?, ended_at = ? WHERE id = ?",
                    (moved.state.value, moved.started_at, moved.ended_at, session_id),
                )
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
                ).fetchone()
                conn.execute("COMMIT")
                return row
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        row = await self._run(_set)
        if row is None:
            raise SessionNotFound(f"no session {session_id!r}")
        record = _row_to_record(row)
        logger.info("session %s is %s", session_id, record.state)
        return record

    async def add_recording_decision(
        self, session_id: str, decision: RecordingDecision
    ) -> SessionRecord:
        def _add(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT recording_decisions FROM sessions WHERE id = ?", (session_id,)
                ).fetchone()
                if row is None:
                    conn.execute("ROLLBACK")
                    return None
                decisions = [*json.loads(row[0] or "[]"), decision.to_json()]
                conn.execute(
                    "UPDATE sessions SET recording_decisions = ? WHERE id = ?",
                    (json.dumps(decisions), session_id),
                )
                out: tuple[Any, ...] | None = conn.execute(
                    f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
                ).fetchone()
                conn.execute("COMMIT")
                return out
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        row = await self._run(_add)
        if row is None:
            raise SessionNotFound(f"no session {session_id!r}")
        logger.info(
            "session %s: recording %s by %s",
            session_id,
            "on" if decision.recording else "off",
            decision.by_role,
        )
        return _row_to_record(row)

    async def close(self) -> None:
        await self._db.close()


