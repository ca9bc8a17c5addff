"""The admin pages for people: schools and allowed e-mail domains (district
admins), persons, their roles, passwords and caseloads (school admins in
their school, district admins everywhere). Every change is audited; what
an admin may change is the policy's (``may_manage_school``).

| route | what |
|---|---|
| GET /admin/people | the page |
| POST /admin/schools | a school (district admin) |
| POST /admin/domains | an allowed e-mail domain (district admin) |
| POST /admin/people | a person, with a role in a school and an optional password |
| POST /admin/people/{id}/roles | grant (or ``revoke=1``) a role |
| POST /admin/people/{id}/disable, /enable | every login session and socket ends |
| POST /admin/people/{id}/password | a password they must change at sign-in |
| POST /admin/caseloads | a teacher into (or ``remove=1`` out of) a coach's caseload |
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.access.policy import PersonAction, may_manage_school, person_may
from server.core.errors import Forbidden, InvalidMessage
from server.http.login import form_text, login_of, principal_of
from server.http.pages import Renderer
from server.people.principal import PersonRole, Principal
from server.people.service import People


def _role(value: str) -> PersonRole:
    try:
        return PersonRole(value)
    except ValueError:
        allowed = ", ".join(r.value for r in PersonRole)
        raise InvalidMessage(f"role must be one of: {allowed}") from None


class PeopleAdmin:
    def __init__(self, people: People, pages: Renderer) -> None:
        self.people = people
        self.pages = pages

    async def _admin(self, request: web.Request, school_id: str | None = None) -> Principal:
        person = await principal_of(request)
        if not person_may(person, PersonAction.MANAGE_PEOPLE):
            raise Forbidden("school and district admins manage people")
        if school_id is not None and not may_manage_school(person, school_id):
            await self._audit(person, "refused", what="manage", school=school_id)
            raise Forbidden("you manage the people of your own school")
        return person

    async def _audit(self, admin: Principal, action: str, **entry: Any) -> None:
        await self.people.audit.append({"action": action, "by": admin.person_id, **entry})

    async def page(self, request: web.Request) -> web.Response:
        admin = await self._admin(request)
        district = admin.has(PersonRole.DISTRICT_ADMIN)
        schools = await self.people.directory.schools()
        if not district:
            mine = admin.schools(PersonRole.SCHOOL_ADMIN)
            schools = [s for s in schools if s["id"] in mine]
        people: dict[str, dict[str, Any]] = {}
        for school in [None] if district else schools:
            for p in await self.people.directory.people(school["id"] if school else None):
                people[p.id] = {**p.to_json(), "roles": []}
        for pid in people:
            principal = await self.people.directory.principal(pid)
            people[pid]["roles"] = principal.describe()["roles"]
        return self.pages.render(
            "admin_people.html",
            title="People",
            page=None,
            csrf=login_of(request).csrf,
            district=district,
            schools=schools,
            people=list(people.values()),
            domains=await self.people.directory.allowed_domains() if district else [],
            roles=[r.value for r in PersonRole],
        )

    async def add_school(self, request: web.Request) -> web.StreamResponse:
        admin = await self._admin(request)
        if not person_may(admin, PersonAction.MANAGE_DISTRICT):
            raise Forbidden("district admins add schools")
        form = await request.post()
        school_id = await self.people.directory.create_school(form_text(form, "name", 200))
        await self._audit(admin, "school-added", school=school_id)
        raise web.HTTPSeeOther("/admin/people")

    async def add_domain(self, request: web.Request) -> web.StreamResponse:
        admin = await self._admin(request)
        if not person_may(admin, PersonAction.MANAGE_DISTRICT):
            raise Forbidden("district admins allow domains")
        form = await request.post()
        domain = form_text(form, "domain", 260)
        await self.people.directory.allow_domain(domain, form_text(form, "school", 64) or None)
        await self._audit(admin, "domain-allowed", domain=domain)
        raise web.HTTPSeeOther("/admin/people")

    async def add_person(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        role = _role(form_text(form, "role", 30))
        school = form_text(form, "school", 64) or None
        admin = await self._admin(request, None if role is PersonRole.DISTRICT_ADMIN else school)
        if role is PersonRole.DISTRICT_ADMIN and not admin.has(PersonRole.DISTRICT_ADMIN):
            raise Forbidden("district admins make district admins")
        person_id = await self.people.directory.create_person(
            form_text(form, "name", 200), form_text(form, "email", 254) or None
        )
        await self.people.directory.grant(person_id, role, school)
        password = form_text(form, "password", 300)
        if password:
            await self.people.accounts.set_password(person_id, password, by=admin.person_id)
        await self._audit(admin, "person-added", person=person_id, role=str(role), school=school)
        raise web.HTTPSeeOther("/admin/people")

    async def roles(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        role = _role(form_text(form, "role", 30))
        school = form_text(form, "school", 64) or None
        admin = await self._admin(request, None if role is PersonRole.DISTRICT_ADMIN else school)
        if role is PersonRole.DISTRICT_ADMIN and not admin.has(PersonRole.DISTRICT_ADMIN):
            raise Forbidden("district admins make district admins")
        person_id = request.match_info["person_id"]
        await self.people.directory.row(person_id)
        if form.get("revoke"):
            await self.people.directory.revoke(person_id, role, school)
        else:
            await self.people.directory.grant(person_id, role, school)
        action = "role-revoked" if form.get("revoke") else "role-granted"
        await self._audit(admin, action, person=person_id, role=str(role), school=school)
        raise web.HTTPSeeOther("/admin/people")

    async def _manages(self, admin: Principal, person_id: str) -> None:
        """School admins change only people of their school."""
        if admin.has(PersonRole.DISTRICT_ADMIN):
            return
        target = await self.people.directory.principal(person_id)
        theirs = {g.school_id for g in target.grants}
        if not theirs & admin.schools(PersonRole.SCHOOL_ADMIN) or target.has(
            PersonRole.DISTRICT_ADMIN
        ):
            await self._audit(admin, "refused", what="manage", person=person_id)
            raise Forbidden("you manage the people of your own school")

    async def disable(self, request: web.Request) -> web.StreamResponse:
        admin = await self._admin(request)
        person_id = request.match_info["person_id"]
        await self._manages(admin, person_id)
        disabled = request.match_info["what"] == "disable"
        await self.people.accounts.set_disabled(person_id, disabled, by=admin.person_id)
        raise web.HTTPSeeOther("/admin/people")

    async def password(self, request: web.Request) -> web.StreamResponse:
        admin = await self._admin(request)
        person_id = request.match_info["person_id"]
        await self._manages(admin, person_id)
        form = await request.post()
        await self.people.accounts.set_password(
            person_id, form_text(form, "password", 300), by=admin.person_id
        )
        raise web.HTTPSeeOther("/admin/people")

    async def caseload(self, request: web.Request) -> web.StreamResponse:
        admin = await self._admin(request)
        form = await request.post()
        coach, teacher = form_text(form, "coach", 64), form_text(form, "teacher", 64)
        await self._manages(admin, coach)
        await self._manages(admin, teacher)
        if not (await self.people.directory.principal(coach)).has(PersonRole.COACH):
            raise InvalidMessage("a caseload belongs to a coach")
        if form.get("remove"):
            await self.people.directory.remove_from_caseload(coach, teacher)
        else:
            await self.people.directory.add_to_caseload(coach, [teacher])
        action = "caseload-removed" if form.get("remove") else "caseload-added"
        await self._audit(admin, action, coach=coach, teacher=teacher)
        raise web.HTTPSeeOther("/admin/people")


def setup_people_admin(app: web.Application, people: People, pages: Renderer) -> None:
    a = PeopleAdmin(people, pages)
    app.router.add_get("/admin/people", a.page)
    app.router.add_post("/admin/schools", a.add_school)
    app.router.add_post("/admin/domains", a.add_domain)
    app.router.add_post("/admin/people", a.add_person)
    app.router.add_post("/admin/people/{person_id}/roles", a.roles)
    app.router.add_post("/admin/people/{person_id}/{what:disable|enable}", a.disable)
    app.router.add_post("/admin/people/{person_id}/password", a.password)
    app.router.add_post("/admin/caseloads", a.caseload)
