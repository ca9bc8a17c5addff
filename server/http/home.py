"""A signed-in person's home page and what they do from it, without links
to copy: the teacher's next lesson and **Go live**; the coach's lessons of
today with **Watch**, their caseload with each teacher's last lesson, and
scheduling; the coaching groups' debriefs; the iCalendar feed. Every
lesson shown and joined is the access policy's answer for this person.

| route | what |
|---|---|
| GET /home | the page |
| GET /api/me | who is signed in, their roles, the page's CSRF token |
| GET /api/lessons (signed in) | the lessons this person may read, newest first |
| POST /lessons | a coach schedules a lesson with a teacher of their caseload |
| POST /lessons/{id}/go | join it live as the policy says (teacher, coach, member) |
| POST /lessons/{id}/share | its teacher opens it to a coach or shares its recording |
| POST /groups | a group from one's caseload |
| POST /groups/{id}/debrief | a debrief for the group, in one click |
| POST /calendar/renew, /calendar/revoke | the feed's secret URL |
| GET /calendar/{token}.ics | the feed |
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from server.access.policy import PersonAction, may_schedule_with, may_share, person_may
from server.core.config import Config
from server.core.errors import Forbidden, InvalidMessage, RateLimited
from server.core.roles import Role, SessionState
from server.core.tokens import issue_invite
from server.http.admin import _PerTokenRate
from server.http.login import form_text, login_of, principal_of
from server.http.pages import Renderer
from server.http.person_access import PersonAccess
from server.http.replies import json_response
from server.people.calendar import ical
from server.people.errors import NotInCaseload, PersonNotFound
from server.people.lessons import SHARE_COACH, SHARE_VIEWER
from server.people.principal import PersonRole, Principal
from server.people.service import People
from server.recording.catalog import RecordingCatalog
from server.storage.sessions import (
    DEFAULT_PROMPTS,
    DEFAULT_TALLIES,
    SessionKind,
    SessionRecord,
    SessionSettings,
)

logger = logging.getLogger(__name__)

#: how far ahead the home page looks for lessons
UPCOMING_DAYS = 14
#: past lessons the home page lists
PAST_ON_HOME = 20


def when_text(t: float | None) -> str:
    """ "Tuesday 9:10" (local time of the server), "" for none."""
    if t is None:
        return ""
    d = datetime.fromtimestamp(t)
    return f"{d.strftime('%A')} {d.hour}:{d.minute:02d}"


def _lines(text: str, max_items: int) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.splitlines() if x.strip())[:max_items]


class Home:
    def __init__(
        self, config: Config, people: People, catalog: RecordingCatalog, pages: Renderer
    ) -> None:
        self.config = config
        self.people = people
        self.catalog = catalog
        self.pages = pages
        self.access = PersonAccess(people)
        self._schedules = _PerTokenRate(config.limits.lessons_per_person_per_minute)

    # -- the page -------------------------------------------------------------------

    def _lesson(self, r: SessionRecord, names: dict[str, str]) -> dict[str, Any]:
        return {
            "id": r.id,
            "title": r.title,
            "teacher": r.teacher_name,
            "coach": names.get(r.people.coach_id or "", ""),
            "when": when_text(r.scheduled_for or r.started_at or r.created_at),
            "state": str(r.state),
            "recording": r.recording_planned,
        }

    async def home(self, request: web.Request) -> web.Response:
        try:
            person = await principal_of(request)
        except Exception as exc:
            if getattr(exc, "code", "") == "not_signed_in":
                raise web.HTTPSeeOther("/signin?next=/home") from None
            if getattr(exc, "code", "") == "password_change_required":
                raise web.HTTPSeeOther("/account/password?next=/home") from None
            raise
        return self.pages.render(
            "home.html",
            title="Home",
            page=None,
            csrf=login_of(request).csrf,
            **await self.home_data(person),
        )

    async def home_data(self, person: Principal) -> dict[str, Any]:
        now = time.time()
        today = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0).timestamp()
        upcoming = await self.people.lessons.upcoming(
            person, since=today, until=now + UPCOMING_DAYS * 86400
        )
        names = await self.people.directory.names(
            r.people.coach_id for r in upcoming if r.people.coach_id
        )
        live_roles = {r.id: await self.access.live_role(person, r) for r in upcoming}
        mine = person.person_id
        teaching = [
            r
            for r in upcoming
            if r.people.teacher_id == mine
            and r.kind is SessionKind.LESSON
            and (r.state is SessionState.LIVE or (r.scheduled_for or 0) >= now - 3600)
        ]
        tomorrow = today + 86400
        watching = [
            r
            for r in upcoming
            if r.kind is SessionKind.LESSON
            and live_roles[r.id] is Role.COACH
            and (r.state is SessionState.LIVE or today <= (r.scheduled_for or 0) < tomorrow)
        ]
        debriefs = [r for r in upcoming if r.kind is SessionKind.DEBRIEF and live_roles[r.id]]
        caseload = await self.people.directory.caseload(mine)
        last = await self.people.lessons.last_lessons([t.id for t in caseload])
        past = await self.people.lessons.visible(
            person, states=[SessionState.ENDED], limit=PAST_ON_HOME
        )
        recordings = await self.catalog.for_sessions([r.id for r in past])
        by_session: dict[str, list[str]] = {}
        for row in recordings:
            by_session.setdefault(row.session_id, []).append(row.id)
        return {
            "person": person.describe(),
            "is_teacher": person.has(PersonRole.TEACHER) or bool(teaching),
            "is_coach": person.has(PersonRole.COACH),
            "manages": person_may(person, PersonAction.MANAGE_PEOPLE),
            "next": self._lesson(teaching[0], names) if teaching else None,
            "teaching": [self._lesson(r, names) for r in teaching[1:6]],
            "watching": [self._lesson(r, names) for r in watching],
            "debriefs": [self._lesson(r, names) for r in debriefs],
            "caseload": [
                {
                    "id": t.id,
                    "name": t.name,
                    "last": self._lesson(last[t.id], names) if t.id in last else None,
                }
                for t in caseload
            ],
            "groups": await self.people.directory.groups_of(mine),
            "recorded": [
                {**self._lesson(r, names), "recordings": by_session[r.id]}
                for r in past
                if r.id in by_session and r.kind is SessionKind.LESSON
            ],
            "past": [
                {
                    **self._lesson(r, names),
                    "recordings": by_session.get(r.id, []),
                    "shareable": r.people.teacher_id == mine,
                }
                for r in past
            ],
            "defaults": {
                "prompts": "\n".join(DEFAULT_PROMPTS),
                "tallies": "\n".join(DEFAULT_TALLIES),
            },
        }

    async def me(self, request: web.Request) -> web.Response:
        person = await principal_of(request, allow_password_change=True)
        return json_response(
            {
                "person": person.describe(),
                "csrf": login_of(request).csrf,
                "mustChangePassword": person.must_change_password,
            }
        )

    async def lessons(self, request: web.Request) -> web.Response:
        """``GET /api/lessons`` for a signed-in person."""
        person = await principal_of(request)
        try:
            limit = int(request.query.get("limit", "100"))
            before = float(request.query["before"]) if "before" in request.query else None
        except ValueError:
            raise InvalidMessage("limit and before must be numbers") from None
        records = await self.people.lessons.visible(person, limit=limit, before=before)
        readable = [r for r, _ in await self.access.readers(person, records, "lessons-list")]
        recordings = await self.catalog.for_sessions([r.id for r in readable])
        by_session: dict[str, list[dict[str, Any]]] = {}
        for row in recordings:
            by_session.setdefault(row.session_id, []).append(row.to_json())
        lessons = [
            {"session": r.to_json(), "recordings": by_session.get(r.id, []), "coaches": [],
             "debriefs": []}
            for r in readable
        ]
        return json_response({"lessons": lessons, "admin": False})

    # -- actions ------------------------------------------------------------------------

    async def schedule(self, request: web.Request) -> web.StreamResponse:
        person = await principal_of(request)
        form = await request.post()
        teacher_id = form_text(form, "teacher", 64)
        if not may_schedule_with(person, teacher_id):
            await self.people.audit.append(
                {
                    "action": "refused",
                    "what": "schedule",
                    "person": person.person_id,
                    "teacher": teacher_id,
                }
            )
            raise NotInCaseload("you can schedule lessons with the teachers of your caseload")
        if not self._schedules.allow(person.person_id):
            raise RateLimited("too many lessons scheduled in a minute")
        teacher = await self.people.directory.row(teacher_id)
        when_raw = form_text(form, "when", 64)
        try:
            when = datetime.fromisoformat(when_raw).timestamp() if when_raw else None
        except ValueError:
            raise InvalidMessage("the time must be a date and time") from None
        settings = SessionSettings(
            recording=form.get("recording") == "on",
            prompts=_lines(form_text(form, "prompts", 4000), 24) or DEFAULT_PROMPTS,
            tally_categories=_lines(form_text(form, "tallies", 2000), 12) or DEFAULT_TALLIES,
        )
        target = await self.people.directory.principal(teacher_id)
        schools = target.schools(PersonRole.TEACHER)
        record = await self.people.lessons.schedule(
            coach=person,
            teacher_id=teacher_id,
            teacher_name=teacher.name,
            school_id=min(schools) if schools else None,
            title=form_text(form, "title", 200),
            when=when,
            settings=settings,
        )
        await self.people.audit.append(
            {
                "action": "lesson-scheduled",
                "person": person.person_id,
                "session": record.id,
                "teacher": teacher_id,
            }
        )
        raise web.HTTPSeeOther("/home")

    async def go(self, request: web.Request) -> web.StreamResponse:
        """Join a lesson live as the policy says: an invite for this person
        and this login session, then the lesson's page."""
        person = await principal_of(request)
        login = login_of(request)
        record = await self.people.lessons.store.get(request.match_info["session_id"])
        role = await self.access.live_role(person, record)
        if role is None:
            await self.people.audit.append(
                {
                    "action": "refused",
                    "what": "join",
                    "person": person.person_id,
                    "session": record.id,
                }
            )
            raise Forbidden("this lesson is not yours to join")
        if record.state is SessionState.ENDED:
            raise web.HTTPSeeOther("/home")
        token = issue_invite(
            self.config.secret,
            record.id,
            role,
            ttl_s=int(login.expires_at - time.time()) + 1,
            name=person.name,
            invite_id=person.invite_id,
            login=login.id_hash,
            owner=record.kind is SessionKind.DEBRIEF
            and record.people.teacher_id == person.person_id,
        )
        await self.people.audit.append(
            {"action": "join", "person": person.person_id, "session": record.id, "role": str(role)}
        )
        raise web.HTTPSeeOther(f"/join?token={token}")

    async def share(self, request: web.Request) -> web.StreamResponse:
        person = await principal_of(request)
        record = await self.people.lessons.store.get(request.match_info["session_id"])
        if not may_share(person, await self.access.facts(person, record)):
            raise Forbidden("only the lesson's teacher shares it")
        form = await request.post()
        role = form_text(form, "role", 20) or SHARE_VIEWER
        if role not in (SHARE_COACH, SHARE_VIEWER):
            raise InvalidMessage("role must be coach or viewer")
        other = await self.people.directory.by_email(form_text(form, "email", 254))
        if other is None:
            raise PersonNotFound("nobody here has that e-mail address")
        await self.people.lessons.share(record.id, other.id, role, by=person.person_id)
        await self.people.audit.append(
            {
                "action": "lesson-shared",
                "person": person.person_id,
                "session": record.id,
                "with": other.id,
                "role": role,
            }
        )
        raise web.HTTPSeeOther("/home")

    async def make_group(self, request: web.Request) -> web.StreamResponse:
        person = await principal_of(request)
        if not person_may(person, PersonAction.MAKE_GROUP):
            raise Forbidden("coaches and admins make groups")
        form = await request.post()
        members = [m for m in form.getall("member", []) if isinstance(m, str)]
        if not set(members) <= person.caseload and not person_may(
            person, PersonAction.MANAGE_PEOPLE
        ):
            raise NotInCaseload("a coach's group is made from their caseload")
        group_id = await self.people.directory.create_group(
            form_text(form, "name", 200), members, by=person.person_id
        )
        await self.people.audit.append(
            {
                "action": "group-made",
                "person": person.person_id,
                "group": group_id,
                "members": members,
            }
        )
        raise web.HTTPSeeOther("/home")

    async def group_debrief(self, request: web.Request) -> web.StreamResponse:
        person = await principal_of(request)
        group_id = request.match_info["group_id"]
        if group_id not in person.groups or not person_may(
            person, PersonAction.START_GROUP_DEBRIEF
        ):
            raise Forbidden("members of a group start its debriefs")
        name, _ = await self.people.directory.group(group_id)
        form = await request.post()
        recording_id = form_text(form, "recording", 64) or None
        if recording_id is not None:
            row = await self.catalog.get(recording_id)
            record = await self.people.lessons.store.get(row.session_id) if row else None
            if (
                record is None
                or await self.access.reader_for_lesson(person, record, "debrief") is None
            ):
                raise Forbidden("a debrief watches a recording you may read")
        record = await self.people.lessons.group_debrief(
            by=person, group_id=group_id, title=f"{name}: debrief", recording_id=recording_id
        )
        await self.people.audit.append(
            {
                "action": "group-debrief",
                "person": person.person_id,
                "group": group_id,
                "session": record.id,
            }
        )
        raise web.HTTPSeeOther("/home")

    # -- the calendar --------------------------------------------------------------------

    async def calendar_renew(self, request: web.Request) -> web.StreamResponse:
        person = await principal_of(request)
        token = await self.people.calendars.renew(person.person_id)
        await self.people.audit.append({"action": "calendar-renewed", "person": person.person_id})
        url = f"{self.config.base_url}/calendar/{token}.ics"
        return self.pages.render("calendar.html", title="Your calendar", page=None, url=url)

    async def calendar_revoke(self, request: web.Request) -> web.StreamResponse:
        person = await principal_of(request)
        await self.people.calendars.revoke(person.person_id)
        await self.people.audit.append({"action": "calendar-revoked", "person": person.person_id})
        raise web.HTTPSeeOther("/home")

    async def calendar(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        person_id = await self.people.calendars.person_of(token)
        if person_id is None:
            raise PersonNotFound("no such calendar")
        person = await self.people.directory.principal(person_id)
        now = time.time()
        records = await self.people.lessons.upcoming(
            person, since=now - 30 * 86400, until=now + 180 * 86400
        )
        names = await self.people.directory.names(r.people.coach_id or "" for r in records)
        host = self.config.base_url.split("//", 1)[-1].split("/", 1)[0]
        body = ical(records, base_url=self.config.base_url, host=host, names=names)
        return web.Response(
            text=body, content_type="text/calendar", headers={"Cache-Control": "no-store"}
        )


def setup_home(
    app: web.Application,
    config: Config,
    people: People,
    catalog: RecordingCatalog,
    pages: Renderer,
) -> Home:
    h = Home(config, people, catalog, pages)
    app.router.add_get("/home", h.home)
    app.router.add_get("/api/me", h.me)
    app.router.add_post("/lessons", h.schedule)
    app.router.add_post("/lessons/{session_id}/go", h.go)
    app.router.add_post("/lessons/{session_id}/share", h.share)
    app.router.add_post("/groups", h.make_group)
    app.router.add_post("/groups/{group_id}/debrief", h.group_debrief)
    app.router.add_post("/calendar/renew", h.calendar_renew)
    app.router.add_post("/calendar/revoke", h.calendar_revoke)
    app.router.add_get("/calendar/{token}.ics", h.calendar)
    return h
