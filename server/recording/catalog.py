"""Recording metadata in the one database (the ``recordings`` table): which
recordings exist, for which session, how big, in what state.

With several nodes a recording also names the node that wrote it and the
series it belongs to: a session that moved between nodes (one was killed or
drained) has one recording per node, its *parts*, all with the ``series``
of the first part and ``part`` numbers 1, 2, ... in the order written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from server.storage.database import Database
from server.storage.models import Recording

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


def _row(r: Recording) -> RecordingRow:
    return RecordingRow(
        r.id,
        r.session_id,
        Path(r.directory),
        r.state,
        r.started_at,
        r.ended_at,
        r.duration_ms,
        r.bytes,
        r.deleted_at,
        r.deleted_by,
        r.node or "",
        r.series or "",
        r.part,
    )


class RecordingCatalog:
    """The catalog on the one database (shared by every node of a deployment)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        #: told (id, directory) of each recording finalized (or recovered)
        #: here: its measures are computed then (``measure_runs.py``)
        self.on_finished: Callable[[str, Path], None] | None = None

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
        insert = postgresql.insert if self._db.dialect == "postgresql" else sqlite.insert
        stmt = insert(Recording).values(
            id=recording_id,
            session_id=session_id,
            directory=str(directory),
            state=RECORDING,
            started_at=started_at,
            series=series,
            part=part,
            node=node,
            duration_ms=0,
            bytes=0,
        )
        async with self._db.session() as s, s.begin():
            await s.execute(stmt.on_conflict_do_nothing())

    async def finish(self, recording_id: str, manifest: dict[str, Any]) -> None:
        """The recording is finalized (or recovered); its row says so. A
        part that another node recovered names again the node that wrote
        it (the manifest's ``node``; ``take_over`` borrowed the column)."""
        writer = str(manifest.get("node") or "")
        values: dict[str, Any] = {
            "state": manifest.get("state", "finalized"),
            "ended_at": manifest.get("ended_at"),
            "duration_ms": int(manifest.get("duration_ms") or 0),
            "bytes": int(manifest.get("bytes") or 0),
        }
        if writer:
            values["node"] = writer
        async with self._db.session() as s, s.begin():
            await s.execute(update(Recording).where(Recording.id == recording_id).values(**values))
        if self.on_finished is not None:
            row = await self.get(recording_id)
            if row is not None and not row.deleted:
                self.on_finished(row.id, row.directory)

    async def _select(self, query: Any) -> list[RecordingRow]:
        async with self._db.session() as s:
            return [_row(r) for r in (await s.execute(query)).scalars().all()]

    async def recordings(
        self, session_id: str | None = None, *, include_deleted: bool = False
    ) -> list[RecordingRow]:
        query = select(Recording).order_by(Recording.started_at)
        if session_id is not None:
            query = query.where(Recording.session_id == session_id)
        if not include_deleted:
            query = query.where(Recording.state != DELETED)
        return await self._select(query)

    async def for_sessions(self, session_ids: list[str]) -> list[RecordingRow]:
        """The recordings (not deleted) of these sessions, oldest first."""
        if not session_ids:
            return []
        query = (
            select(Recording)
            .where(Recording.session_id.in_(session_ids), Recording.state != DELETED)
            .order_by(Recording.started_at)
        )
        return await self._select(query)

    async def in_state(self, state: str) -> list[RecordingRow]:
        return await self._select(select(Recording).where(Recording.state == state))

    async def get(self, recording_id: str) -> RecordingRow | None:
        async with self._db.session() as s:
            row = await s.get(Recording, recording_id)
        return _row(row) if row is not None else None

    async def older_than(self, cutoff: float) -> list[RecordingRow]:
        return await self._select(
            select(Recording).where(
                Recording.started_at < cutoff, Recording.state.not_in((RECORDING, DELETED))
            )
        )

    async def mark_deleted(self, recording_id: str, *, by: str, at: float) -> None:
        """The files are gone: keep the row (who deleted it, when)."""
        async with self._db.session() as s, s.begin():
            await s.execute(
                update(Recording)
                .where(Recording.id == recording_id)
                .values(state=DELETED, deleted_at=at, deleted_by=by)
            )

    async def take_over(self, recording_id: str, from_node: str, to_node: str) -> bool:
        """Make ``to_node`` the writer of a recording ``from_node`` left
        unfinished (it died); False if another node took it first."""
        async with self._db.session() as s, s.begin():
            result = await s.execute(
                update(Recording)
                .where(
                    Recording.id == recording_id,
                    Recording.node == from_node,
                    Recording.state == RECORDING,
                )
                .values(node=to_node)
            )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def close(self) -> None:
        """The database is the caller's: closing the catalog leaves it open."""
