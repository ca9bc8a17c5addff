"""Lessons as people see them: a coach schedules one with a teacher of
their caseload, a teacher opens theirs to a coach or shares its recording,
a group's debrief is started in one click; and the queries home pages make.

These queries only *narrow* (they find the lessons a person might read);
``access/policy.py`` decides for each one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, false, func, or_, select

from server.core.errors import LimitReached
from server.core.roles import SessionState
from server.people.principal import PersonRole, Principal
from server.storage.lessons import MAX_LESSONS_PER_PAGE, SqlSessionStore
from server.storage.models import Lesson, LessonShare
from server.storage.sessions import LessonPeople, SessionKind, SessionRecord, SessionSettings

#: share roles
SHARE_COACH = "coach"
SHARE_VIEWER = "viewer"
#: persons one lesson may be shared with
MAX_SHARES_PER_LESSON = 50


@dataclass(frozen=True)
class Caseload:
    teacher_id: str
    name: str
    last: SessionRecord | None


class PeopleLessons:
    def __init__(self, store: SqlSessionStore) -> None:
        self.store = store
        self.db = store.db

    async def schedule(
        self,
        *,
        coach: Principal,
        teacher_id: str,
        teacher_name: str,
        school_id: str | None,
        title: str,
        when: float | None,
        settings: SessionSettings,
    ) -> SessionRecord:
        return await self.store.create(
            title=title,
            teacher_name=teacher_name,
            settings=settings,
            scheduled_for=when,
            people=LessonPeople(
                teacher_id=teacher_id, coach_id=coach.person_id, school_id=school_id
            ),
        )

    async def group_debrief(
        self, *, by: Principal, group_id: str, title: str, recording_id: str | None
    ) -> SessionRecord:
        return await self.store.create(
            title=title,
            teacher_name=by.name,
            settings=SessionSettings(recording=False),
            scheduled_for=time.time(),
            kind=SessionKind.DEBRIEF,
            recording_id=recording_id,
            people=LessonPeople(teacher_id=by.person_id, group_id=group_id),
        )

    # -- shares ------------------------------------------------------------------------

    async def shares(self, lesson_id: str) -> dict[str, str]:
        async with self.db.session() as s:
            rows = await s.execute(
                select(LessonShare.person_id, LessonShare.role).where(
                    LessonShare.lesson_id == lesson_id
                )
            )
            return {pid: role for pid, role in rows.all()}

    async def shares_of(self, person_id: str, lesson_ids: Sequence[str]) -> dict[str, str]:
        """How each of these lessons was shared with this person (one query)."""
        if not lesson_ids:
            return {}
        q = select(LessonShare.lesson_id, LessonShare.role).where(
            LessonShare.person_id == person_id, LessonShare.lesson_id.in_(list(lesson_ids))
        )
        async with self.db.session() as s:
            return {lid: role for lid, role in (await s.execute(q)).all()}

    async def share(self, lesson_id: str, person_id: str, role: str, *, by: str) -> None:
        async with self.db.session() as s, s.begin():
            n = len(
                (
                    await s.execute(
                        select(LessonShare.person_id).where(LessonShare.lesson_id == lesson_id)
                    )
                ).all()
            )
            if n >= MAX_SHARES_PER_LESSON:
                raise LimitReached(f"a lesson is shared with at most {MAX_SHARES_PER_LESSON}")
            await s.merge(
                LessonShare(
                    lesson_id=lesson_id,
                    person_id=person_id,
                    role=role,
                    granted_by=by,
                    granted_at=time.time(),
                )
            )

    # -- what a person might read (the policy decides each) ---------------------------

    def candidates(self, person: Principal) -> Select[Lesson]:
        """Lessons this person has some relation to (newest first)."""
        q = select(Lesson).order_by(Lesson.created_at.desc(), Lesson.id)
        if person.has(PersonRole.DISTRICT_ADMIN):
            return q
        shared = select(LessonShare.lesson_id).where(LessonShare.person_id == person.person_id)
        admin_schools = person.schools(PersonRole.SCHOOL_ADMIN)
        return q.where(
            or_(
                Lesson.teacher_id == person.person_id,
                Lesson.coach_id == person.person_id,
                Lesson.teacher_id.in_(person.caseload) if person.caseload else false(),
                Lesson.id.in_(shared),
                Lesson.group_id.in_(person.groups) if person.groups else false(),
                Lesson.school_id.in_(admin_schools) if admin_schools else false(),
            )
        )

    async def visible(
        self,
        person: Principal,
        *,
        states: Sequence[SessionState] | None = None,
        limit: int = MAX_LESSONS_PER_PAGE,
        before: float | None = None,
    ) -> list[SessionRecord]:
        q = self.candidates(person).limit(max(1, min(limit, MAX_LESSONS_PER_PAGE)))
        if states:
            q = q.where(Lesson.state.in_([s.value for s in states]))
        if before is not None:
            q = q.where(Lesson.created_at < before)
        return await self.store.select(q)

    async def upcoming(
        self, person: Principal, *, since: float, until: float
    ) -> list[SessionRecord]:
        """Not-ended lessons this person teaches, coaches or belongs to,
        scheduled between ``since`` and ``until`` (or live now)."""
        q = (
            self.candidates(person)
            .where(Lesson.state != SessionState.ENDED.value)
            .where(
                or_(
                    Lesson.state == SessionState.LIVE.value,
                    Lesson.scheduled_for.between(since, until),
                )
            )
            .order_by(None)
            .order_by(Lesson.scheduled_for, Lesson.id)
            .limit(MAX_LESSONS_PER_PAGE)
        )
        return await self.store.select(q)

    async def last_lessons(self, teacher_ids: Sequence[str]) -> dict[str, SessionRecord]:
        """Each teacher's latest lesson that went live (one query)."""
        if not teacher_ids:
            return {}
        newest = (
            select(Lesson.teacher_id.label("t"), func.max(Lesson.started_at).label("m"))
            .where(
                Lesson.teacher_id.in_(teacher_ids),
                Lesson.started_at.is_not(None),
                Lesson.kind == SessionKind.LESSON.value,
            )
            .group_by(Lesson.teacher_id)
            .subquery()
        )
        q = select(Lesson).join(
            newest, (Lesson.teacher_id == newest.c.t) & (Lesson.started_at == newest.c.m)
        )
        return {r.people.teacher_id or "": r for r in await self.store.select(q)}
