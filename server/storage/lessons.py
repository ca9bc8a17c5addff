"""Lessons (``SessionRecord``s) in the one database: the ``SessionStore``
every node uses, and the queries people's pages make (a teacher's next
lesson, a coach's day, a caseload's last lessons)."""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.core.errors import SessionNotFound
from server.core.roles import SessionState
from server.storage.database import Database
from server.storage.legacy import open_database
from server.storage.models import Lesson
from server.storage.sessions import (
    LessonPeople,
    RecordingDecision,
    SessionKind,
    SessionRecord,
    SessionSettings,
    new_record,
)

logger = logging.getLogger(__name__)

#: most lessons one query of the lessons library returns
MAX_LESSONS_PER_PAGE = 500


def record_of(row: Lesson) -> SessionRecord:
    return SessionRecord.from_json(
        {
            "id": row.id,
            "title": row.title,
            "teacher_name": row.teacher_name,
            "state": row.state,
            "created_at": row.created_at,
            "scheduled_for": row.scheduled_for,
            "started_at": row.started_at,
            "ended_at": row.ended_at,
            "settings": json.loads(row.settings or "{}"),
            "recording_decisions": json.loads(row.recording_decisions or "[]"),
            "kind": row.kind,
            "recording_id": row.recording_id,
            "people": {
                "teacher_id": row.teacher_id,
                "coach_id": row.coach_id,
                "school_id": row.school_id,
                "group_id": row.group_id,
            },
        }
    )


def row_of(record: SessionRecord) -> Lesson:
    p = record.people
    return Lesson(
        id=record.id,
        title=record.title,
        teacher_name=record.teacher_name,
        state=record.state.value,
        created_at=record.created_at,
        scheduled_for=record.scheduled_for,
        started_at=record.started_at,
        ended_at=record.ended_at,
        settings=json.dumps(record.settings.to_json()),
        recording_decisions=json.dumps([d.to_json() for d in record.recording_decisions]),
        kind=str(record.kind),
        recording_id=record.recording_id,
        teacher_id=p.teacher_id,
        coach_id=p.coach_id,
        school_id=p.school_id,
        group_id=p.group_id,
    )


class SqlSessionStore:
    """``SessionStore`` on the one database (SQLite or PostgreSQL)."""

    def __init__(self, db: Database, *, owns_db: bool = False) -> None:
        self.db = db
        self._owns_db = owns_db

    async def create(
        self,
        *,
        title: str,
        teacher_name: str,
        settings: SessionSettings,
        scheduled_for: float | None = None,
        kind: SessionKind = SessionKind.LESSON,
        recording_id: str | None = None,
        people: LessonPeople | None = None,
    ) -> SessionRecord:
        record = new_record(
            title=title,
            teacher_name=teacher_name,
            settings=settings,
            scheduled_for=scheduled_for,
            kind=kind,
            recording_id=recording_id,
            people=people,
        )
        async with self.db.session() as s, s.begin():
            s.add(row_of(record))
        logger.info("session %s created: %r", record.id, record.title)
        return record

    async def get(self, session_id: str) -> SessionRecord:
        async with self.db.session() as s:
            row = await s.get(Lesson, session_id)
        if row is None:
            raise SessionNotFound(f"no session {session_id!r}")
        return record_of(row)

    async def list(self, states: Iterable[SessionState] | None = None) -> list[SessionRecord]:
        query = select(Lesson).order_by(Lesson.created_at, Lesson.id)
        if states is not None:
            wanted = [SessionState(s).value for s in states]
            if not wanted:
                return []
            query = query.where(Lesson.state.in_(wanted))
        return await self.select(query)

    async def select(self, query: Select[Lesson]) -> builtins.list[SessionRecord]:
        """The lessons a query of the ``lessons`` table finds."""
        async with self.db.session() as s:
            rows: Sequence[Lesson] = (await s.execute(query)).scalars().all()
        return [record_of(r) for r in rows]

    async def count(self, query: Select[int]) -> int:
        async with self.db.session() as s:
            n: int = (await s.execute(query)).scalar_one()
        return n

    async def _locked(self, s: AsyncSession, session_id: str) -> Lesson:
        # FOR UPDATE on PostgreSQL; SQLite's write transaction is one writer
        row = (
            await s.execute(select(Lesson).where(Lesson.id == session_id).with_for_update())
        ).scalar_one_or_none()
        if row is None:
            raise SessionNotFound(f"no session {session_id!r}")
        return row

    async def set_state(self, session_id: str, state: SessionState, *, at: float) -> SessionRecord:
        state = SessionState(state)
        async with self.db.session(writes=True) as s, s.begin():
            row = await self._locked(s, session_id)
            moved = record_of(row).moved_to(state, at)
            if moved is None:
                return record_of(row)
            await s.execute(
                update(Lesson)
                .where(Lesson.id == session_id, Lesson.state == row.state)
                .values(
                    state=moved.state.value, started_at=moved.started_at, ended_at=moved.ended_at
                )
            )
        logger.info("session %s is %s", session_id, moved.state)
        return moved

    async def add_recording_decision(
        self, session_id: str, decision: RecordingDecision
    ) -> SessionRecord:
        async with self.db.session(writes=True) as s, s.begin():
            row = await self._locked(s, session_id)
            decisions: list[Any] = [*json.loads(row.recording_decisions or "[]")]
            decisions.append(decision.to_json())
            row.recording_decisions = json.dumps(decisions)
            record = record_of(row)
        logger.info(
            "session %s: recording %s by %s",
            session_id,
            "on" if decision.recording else "off",
            decision.by_role,
        )
        return record

    async def update_settings(self, session_id: str, settings: SessionSettings) -> SessionRecord:
        async with self.db.session(writes=True) as s, s.begin():
            row = await self._locked(s, session_id)
            row.settings = json.dumps(settings.to_json())
            return record_of(row)

    async def import_records(self, records: Iterable[SessionRecord]) -> int:
        """Copy records in (from an earlier store); ones already here stay."""
        rows = [row_of(r) for r in records]
        added = 0
        async with self.db.session() as s, s.begin():
            have = set((await s.execute(select(Lesson.id))).scalars())
            for row in rows:
                if row.id not in have:
                    s.add(row)
                    added += 1
        return added

    async def close(self) -> None:
        """Closes the database too when the store opened it (``open_store``)."""
        if self._owns_db:
            await self.db.close()


def lessons_count() -> Select[int]:
    return select(func.count()).select_from(Lesson)


async def open_lessons(data_dir: Path, database_url: str = "") -> SqlSessionStore:
    """A store on the data directory's database, closing it when closed."""
    return SqlSessionStore(await open_database(data_dir, database_url), owns_db=True)
