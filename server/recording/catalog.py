"""Recording metadata in SQLite (``DATA_DIR/recordings.sqlite3``): which
recordings exist, for which session, how big, in what state.

With several nodes a recording also names the node that wrote it and the
series it belongs to: a session that moved between nodes (one was killed or
drained) has one recording per node, its *parts*, all with the ``series``
of the first part and ``part`` numbers 1, 2, ... in the order written."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.storage.sqlite_worker import SqliteWorker, add_missing_columns

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
    bytes INTEGER NOT NULL DEFAULT 0,
    deleted_at REAL,
    deleted_by TEXT
);
CREATE INDEX IF NOT EXISTS recordings_session ON recordings(session_id);
CREATE INDEX IF NOT EXISTS recordings_started ON recordings(started_at);
"""


#: columns added after the first release
_ADDED_COLUMNS = (
    ("deleted_at", "REAL"),
    ("deleted_by", "TEXT"),
    ("node", "TEXT NOT NULL DEFAULT ''"),
    ("series", "TEXT"),
    ("part", "INTEGER NOT NULL DEFAULT 1"),
)

#: a recording whose files are gone (by the teacher, an admin or retention)
DELETED = "deleted"
#: a recording being written
RECORDING = "recording"


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
    deleted_at: float | None = None
    deleted_by: str | None = None
    #: the node that wrote it ("" on a single node)
    node: str = ""
    #: the first part's id (its own id when it is the first or only part)
    series: str = ""
    part: int = 1

    @property
    def deleted(self) -> bool:
        return self.state == DELETED

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "state": self.state,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_ms": self.duration_ms,
            "bytes": self.bytes,
            "deleted_at": self.deleted_at,
            "deleted_by": self.deleted_by,
            "series": self.series or self.id,
            "part": self.part,
            "node": self.node,
        }


_COLUMNS = (
    "id, session_id, directory, state, started_at, ended_at, duration_ms, bytes,"
    " deleted_at, deleted_by, node, series, part"
)


def _row(r: tuple[Any, ...]) -> RecordingRow:
    return RecordingRow(
        r[0], r[1], Path(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11] or "", r[12]
    )


class RecordingCatalog:
    def __init__(self, db: SqliteWorker) -> None:
        self._db = db

    @classmethod
    async def open(cls, data_dir: Path) -> RecordingCatalog:
        db = await SqliteWorker.open(data_dir / CATALOG_FILE, _SCHEMA)
        await db.run(lambda conn: add_missing_columns(conn, "recordings", _ADDED_COLUMNS))
        return cls(db)

    async def add(
        self,
        recording_id: str,
        session_id: str,
        directory: Path,
        started_at: float,
        *,
        series: str | None = None,
        part: int = 1,
        node: str = "",
    ) -> None:
        def add(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO recordings (id, session_id, directory, state, started_at,"
                " series, part, node) VALUES (?, ?, ?, 'recording', ?, ?, ?, ?)",
                (recording_id, session_id, str(directory), started_at, series, part, node),
            )

        await self._db.run(add)

    async def finish(self, recording_id: str, manifest: dict[str, Any]) -> None:
        """The recording is finalized (or recovered); its row says so. A
        part that another node recovered names again the node that wrote
        it (the manifest's ``node``; ``take_over`` borrowed the column)."""
        writer = str(manifest.get("node") or "")

        def finish(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE recordings SET state = ?, ended_at = ?, duration_ms = ?, bytes = ?,"
                " node = CASE WHEN ? = '' THEN node ELSE ? END WHERE id = ?",
                (
                    manifest.get("state", "finalized"),
                    manifest.get("ended_at"),
                    int(manifest.get("duration_ms") or 0),
                    int(manifest.get("bytes") or 0),
                    writer,
                    writer,
                    recording_id,
                ),
            )

        await self._db.run(finish)

    async def recordings(
        self, session_id: str | None = None, *, include_deleted: bool = False
    ) -> list[RecordingRow]:
        def select(conn: sqlite3.Connection) -> list[RecordingRow]:
            where, params = [], []
            if session_id is not None:
                where.append("session_id = ?")
                params.append(session_id)
            if not include_deleted:
                where.append("state != ?")
                params.append(DELETED)
            sql = f"SELECT {_COLUMNS} FROM recordings"
            if where:
                sql += " WHERE " + " AND ".join(where)
            rows = conn.execute(sql + " ORDER BY started_at", params)
            return [_row(r) for r in rows.fetchall()]

        return await self._db.run(select)

    async def in_state(self, state: str) -> list[RecordingRow]:
        def select(conn: sqlite3.Connection) -> list[RecordingRow]:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM recordings WHERE state = ?", (state,))
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
                f"SELECT {_COLUMNS} FROM recordings"
                " WHERE started_at < ? AND state NOT IN (?, ?)",
                (cutoff, RECORDING, DELETED),
            )
            return [_row(r) for r in rows.fetchall()]

        return await self._db.run(select)

    async def mark_deleted(self, recording_id: str, *, by: str, at: float) -> None:
        """The files are gone: keep the row (who deleted it, when)."""
        await self._db.run(
            lambda c: c.execute(
                "UPDATE recordings SET state = ?, deleted_at = ?, deleted_by = ? WHERE id = ?",
                (DELETED, at, by, recording_id),
            )
        )

    async def take_over(self, recording_id: str, from_node: str, to_node: str) -> bool:
        """Make ``to_node`` the writer of a recording ``from_node`` left
        unfinished (it died); False if another node took it first."""

        def take(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE recordings SET node = ? WHERE id = ? AND node = ? AND state = ?",
                (to_node, recording_id, from_node, RECORDING),
            )
            return cur.rowcount == 1

        return await self._db.run(take)

    async def close(self) -> None:
        await self._db.close()
