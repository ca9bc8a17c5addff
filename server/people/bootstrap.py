"""Accounts made from the command line: the first district admin
(``sidecoach admin create-user``), and the demo district that
``scripts/run`` (``serve --demo``) signs into."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from server.people.principal import PersonRole
from server.people.service import People
from server.storage.sessions import LessonPeople, SessionSettings

DEMO_SCHOOL = "Demo Elementary"
DEMO_DOMAIN = "demo.sidecoach.invalid"


async def create_user(
    people: People,
    *,
    name: str,
    email: str,
    role: PersonRole,
    school: str | None,
    password: str | None,
) -> tuple[str, str]:
    """A person with ``role`` (in ``school``, by name, made if missing) and a
    password they must change at their first sign-in: (id, password)."""
    d = people.directory
    school_id = None
    if school:
        school_id = await d.school_by_name(school) or await d.create_school(school)
    person_id = await d.create_person(name, email)
    await d.grant(person_id, role, school_id)
    password = password or secrets.token_urlsafe(12)
    await people.accounts.set_password(person_id, password, by="command line")
    return person_id, password


@dataclass(frozen=True)
class Demo:
    password: str
    coach: str
    teacher: str
    admin: str


async def ensure_demo_district(people: People) -> Demo:
    """A demo school with a district admin, a coach and a teacher in the
    coach's caseload (and a lesson scheduled in ten minutes); each start
    gives them one fresh password."""
    d = people.directory
    school_id = await d.school_by_name(DEMO_SCHOOL) or await d.create_school(DEMO_SCHOOL)
    password = secrets.token_urlsafe(9)
    hashed = await people.accounts.passwords.hash(password)
    ids: dict[str, str] = {}
    for key, name, role in (
        ("admin", "Demo Admin", PersonRole.DISTRICT_ADMIN),
        ("coach", "Ms Rivera", PersonRole.COACH),
        ("teacher", "Mr Okafor", PersonRole.TEACHER),
    ):
        email = f"{key}@{DEMO_DOMAIN}"
        row = await d.by_email(email)
        pid = row.id if row is not None else await d.create_person(name, email)
        await d.grant(pid, role, None if role is PersonRole.DISTRICT_ADMIN else school_id)
        await d.set_password_hash(pid, hashed, must_change=False)
        ids[key] = pid
    await d.add_to_caseload(ids["coach"], [ids["teacher"]])
    coach = await d.principal(ids["coach"])
    upcoming = await people.lessons.upcoming(coach, since=time.time(), until=time.time() + 86400)
    if not upcoming:
        await people.lessons.store.create(
            title="Demo lesson: fractions",
            teacher_name="Mr Okafor",
            settings=SessionSettings(),
            scheduled_for=time.time() + 600,
            people=LessonPeople(
                teacher_id=ids["teacher"], coach_id=ids["coach"], school_id=school_id
            ),
        )
    return Demo(password, f"coach@{DEMO_DOMAIN}", f"teacher@{DEMO_DOMAIN}", f"admin@{DEMO_DOMAIN}")
