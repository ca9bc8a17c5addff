"""Recording metadata in SQLite (``DATA_DIR/recordings.sqlite3``): which
recordings exist, for which session, how big, in what state."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.sqlite_worker import SqliteWorker

CATALOG_FILE = "recordings.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS recordings (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    directory TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS recordings_session ON recordings(session_id);
CREATE INDEX IF NOT EXISTS recordings_started ON recordings(started_at);
"""


@dataclass(frozen=True)
class RecordingRow:
    id: str
    session_id: str
    directory: Path
    state: str
    started_at: float
    ended_at: float | None
    duration_ms: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "state": self.state,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_ms": self.duration_ms,
            "bytes": self.bytes,
        }


_COLUMNS = "id, session_id, directory, state, started_at, ended_at, duration_ms, bytes"


def _row(r: tuple[Any, ...]) -> RecordingRow:
    return RecordingRow(r[0], r[1], Path(r[2]), r[3], r[4], r[5], r[6], r[7])


class RecordingCatalog:
    def __init__(self, db: SqliteWorker) -> None:
        self._db = db

    @classmethod
    async def open(cls, data_dir: Path) -> RecordingCatalog:
        return cls(await SqliteWorker.open(data_dir / CATALOG_FILE, _SCHEMA))

    async def add(
        self, recording_id: str, session_id: str, directory: Path, started_at: float
    ) -> None:
        def add(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO recordings (id, session_id, directory, state, started_at)"
                " VALUES (?, ?, ?, 'recording', ?)",
                (recording_id, session_id, str(directory), started_at),
            )

        await self._db.run(add)

    async def finish(self, recording_id: str, manifest: dict[str, Any]) -> None:
        def finish(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE recordings SET state = ?, ended_at = ?, duration_ms = ?, bytes = ?"
                " WHERE id = ?",
                (
                    manifest.get("state", "finalized"),
                    manifest.get("ended_at"),
                    int(manifest.get("duration_ms") or 0),
                    int(manifest.get("bytes") or 0),
                    recording_id,
                ),
            )

        await self._db.run(finish)

    async def recordings(self, session_id: str | None = None) -> list[RecordingRow]:
        def select(conn: sqlite3.Connection) -> list[RecordingRow]:
            if session_id is None:
                rows = conn.execute(f"SELECT {_COLUMNS} FROM recordings ORDER BY started_at")
            else:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM recordings WHERE session_id = ? ORDER BY started_at",
                    (session_id,),
                )
            return [_row(r) for r in rows.fetchall()]

        return await self._db.run(select)

    async def get(self, recording_id: str) -> RecordingRow | None:
        def select(conn: sqlite3.Connection) -> RecordingRow | None:
            r = conn.execute(
                f"SELECT {_COLUMNS} FROM recordings WHERE id = ?", (recording_id,)
            ).fetchone()
            return _row(r) if r else None

        return await self._db.run(select)

    async def older_than(self, cutoff: float) -> list[RecordingRow]:
        def select(conn: sqlite3.Connection) -> list[RecordingRow]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM recordings WHERE started_at < ? AND state != 'recording'",
                (cutoff,),
            )
            return [_row(r) for r in rows.fetchall()]

        return await self._db.run(select)

    async def delete(self, recording_id: str) -> None:
        await self._db.run(
            lambda c: c.execute("DELETE FROM recordings WHERE id = ?", (recording_id,))
        )

    async def close(self) -> None:
        await self._db.close()
