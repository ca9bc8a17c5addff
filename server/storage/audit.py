"""The audit log: every read of recorded data (a file, a range of it, a
view of the timeline), every deletion, and every account-level decision
(sign-ins, refusals, role changes, shares), appended to the ``audit`` table
of the one database with who, what, when and how many bytes. Admins query
it; a teacher sees who watched their lesson. Entries are never updated or
deleted by the server.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import insert, select

from server.storage.database import Database
from server.storage.legacy import audit_row
from server.storage.models import AuditEntry

#: most entries one query returns (newest first)
MAX_AUDIT_RESULTS = 1000


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(self, entry: dict[str, Any]) -> None:
        row = audit_row({"at": round(time.time(), 3), **entry})
        async with self._db.session() as s, s.begin():
            await s.execute(insert(AuditEntry).values(**row))

    async def append_many(self, entries: list[dict[str, Any]]) -> None:
        """Several entries in one transaction (a list read by an admin)."""
        if not entries:
            return
        at = round(time.time(), 3)
        rows = [audit_row({"at": at, **e}) for e in entries]
        async with self._db.session() as s, s.begin():
            await s.execute(insert(AuditEntry), rows)

    async def query(
        self,
        *,
        recording: str | None = None,
        session: str | None = None,
        since: float | None = None,
        until: float | None = None,
        action: str | None = None,
        person: str | None = None,
        limit: int = MAX_AUDIT_RESULTS,
    ) -> list[dict[str, Any]]:
        """Matching entries, newest first."""
        limit = max(1, min(limit, MAX_AUDIT_RESULTS))
        q = select(AuditEntry.entry).order_by(AuditEntry.id.desc()).limit(limit)
        for column, value in (
            (AuditEntry.recording, recording),
            (AuditEntry.session, session),
            (AuditEntry.action, action),
            (AuditEntry.person_id, person),
        ):
            if value is not None:
                q = q.where(column == value)
        if since is not None:
            q = q.where(AuditEntry.at >= since)
        if until is not None:
            q = q.where(AuditEntry.at < until)
        async with self._db.session() as s:
            rows = (await s.execute(q)).scalars().all()
        return [json.loads(r) for r in rows]

    async def close(self) -> None:
        """The database is the caller's."""
