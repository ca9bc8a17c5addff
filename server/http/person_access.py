"""A signed-in person reading a lesson or a recording: the facts the
policy needs (the lesson's people, whom it was shared with), its answer,
and the audit entry for every refusal and for every read the policy marks
as audited (district and school admins, shared readers)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from server.access.policy import (
    LessonFacts,
    Reader,
    audited,
    person_live_role,
    person_reader,
    relation,
)
from server.core.roles import Role
from server.http.login import principal_of
from server.people.principal import Principal
from server.people.service import People
from server.recording.catalog import RecordingRow
from server.recording.errors import RecordingNotFound
from server.storage.models import Lesson
from server.storage.sessions import SessionKind, SessionRecord


class PersonAccess:
    def __init__(self, people: People) -> None:
        self.people = people

    async def facts(self, person: Principal, record: SessionRecord) -> LessonFacts:
        shares = await self.people.lessons.shares(record.id)
        return LessonFacts.of(record.people, shares)

    async def readers(
        self, person: Principal, records: list[SessionRecord], what: str
    ) -> list[tuple[SessionRecord, Reader]]:
        """The lessons of ``records`` this person may read, with the reader
        each is read as (one query for the shares; refusals and audited
        reads written in one go)."""
        shares = await self.people.lessons.shares_of(person.person_id, [r.id for r in records])
        out: list[tuple[SessionRecord, Reader]] = []
        entries: list[dict[str, Any]] = []
        for record in records:
            own = {person.person_id: shares[record.id]} if record.id in shares else {}
            facts = LessonFacts.of(record.people, own)
            reader = person_reader(person, facts)
            if reader is None:
                entries.append(
                    {
                        "action": "refused",
                        "what": what,
                        "person": person.person_id,
                        "session": record.id,
                    }
                )
                continue
            if audited(person, facts):
                entries.append(
                    {
                        "action": what,
                        "person": person.person_id,
                        "session": record.id,
                        "relation": str(relation(person, facts)),
                        "who": reader.describe(),
                    }
                )
            out.append((record, reader))
        await self.people.audit.append_many(entries)
        return out

    async def _refused(self, person: Principal, what: str, **entry: object) -> None:
        await self.people.audit.append(
            {"action": "refused", "what": what, "person": person.person_id, **entry}
        )

    async def reader_for_lesson(
        self, person: Principal, record: SessionRecord, what: str
    ) -> Reader | None:
        facts = await self.facts(person, record)
        reader = person_reader(person, facts)
        if reader is None:
            await self._refused(person, what, session=record.id)
        elif audited(person, facts):
            await self.people.audit.append(
                {
                    "action": what,
                    "person": person.person_id,
                    "session": record.id,
                    "relation": str(relation(person, facts)),
                    "who": reader.describe(),
                }
            )
        return reader

    async def reader_for_recording(self, request: web.Request, row: RecordingRow) -> Reader:
        """The reader a signed-in person reads ``row`` as; a recording they
        may not read does not exist for them (404), and the refusal is audited."""
        person = await principal_of(request)
        record = await self.people.lessons.store.get(row.session_id)
        facts = await self.facts(person, record)
        reader = person_reader(person, facts)
        if reader is None and person.groups:
            # a coaching group's debrief watches this recording
            q = select(Lesson.id).where(
                Lesson.kind == SessionKind.DEBRIEF.value,
                Lesson.recording_id == row.id,
                Lesson.group_id.in_(person.groups),
            )
            async with self.people.lessons.db.session() as s:
                if (await s.execute(q)).first() is not None:
                    reader = Reader(
                        Role.MEMBER, person.invite_id, person.name, person_id=person.person_id
                    )
        if reader is None:
            await self._refused(person, "recording", recording=row.id, session=row.session_id)
            raise RecordingNotFound("no such recording")
        return reader

    async def live_role(self, person: Principal, record: SessionRecord) -> Role | None:
        return person_live_role(person, await self.facts(person, record))
