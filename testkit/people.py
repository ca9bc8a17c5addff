"""People for tests and benchmarks: a demo district (a school, a district
admin, a coach with a teacher in their caseload, a teacher outside it) and
a browser-like HTTP client that signs in with a password."""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiohttp

from server.people.principal import PersonRole
from server.people.service import People

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class District:
    school: str
    other_school: str
    admin: str
    school_admin: str
    coach: str
    teacher: str
    #: a teacher of the same school outside the coach's caseload
    outsider: str
    other_coach: str


async def seed_district(people: People, *, passwords: bool = True) -> District:
    d = people.directory
    hashed = await people.accounts.passwords.hash(PASSWORD)
    school = await d.create_school("Lincoln Elementary")
    other = await d.create_school("Roosevelt Middle")

    async def person(name: str, email: str, role: PersonRole, school_id: str | None) -> str:
        pid = await d.create_person(name, email)
        await d.grant(pid, role, school_id)
        if passwords:
            await d.set_password_hash(pid, hashed, must_change=False)
        return pid

    admin = await person(
        "Dana Admin", "admin@district.example.org", PersonRole.DISTRICT_ADMIN, None
    )
    school_admin = await person(
        "Sam Principal", "principal@district.example.org", PersonRole.SCHOOL_ADMIN, school
    )
    coach = await person("Ms Rivera", "rivera@district.example.org", PersonRole.COACH, school)
    teacher = await person("Mr Okafor", "okafor@district.example.org", PersonRole.TEACHER, school)
    outsider = await person("Mrs Chen", "chen@district.example.org", PersonRole.TEACHER, school)
    other_coach = await person("Mr Diaz", "diaz@district.example.org", PersonRole.COACH, other)
    await d.add_to_caseload(coach, [teacher])
    return District(school, other, admin, school_admin, coach, teacher, outsider, other_coach)


class Browser:
    """An HTTP client with a cookie jar, as a browser tab would be."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def close(self) -> None:
        await self.http.close()

    async def sign_in(
        self, email: str, password: str = PASSWORD, next_: str = "/home"
    ) -> aiohttp.ClientResponse:
        r = await self.http.post(
            self.base + "/auth/login",
            data={"email": email, "password": password, "next": next_},
            allow_redirects=False,
        )
        await r.read()
        if r.status == 303:
            await self.refresh_csrf()
        return r

    async def refresh_csrf(self) -> None:
        r = await self.http.get(self.base + "/api/me")
        if r.status == 200:
            self.csrf = (await r.json())["csrf"]

    async def get(self, path: str, **kw: object) -> aiohttp.ClientResponse:
        r = await self.http.get(self.base + path, allow_redirects=False, **kw)  # type: ignore[arg-type]
        await r.read()
        return r

    async def post(
        self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True, **kw: object
    ) -> aiohttp.ClientResponse:
        form = dict(data or {})
        if csrf:
            form["csrf"] = self.csrf
        r = await self.http.post(self.base + path, data=form, allow_redirects=False, **kw)  # type: ignore[arg-type]
        await r.read()
        return r
