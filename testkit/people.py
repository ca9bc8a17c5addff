"""People for tests and benchmarks: a demo district (a school, a district
admin, a coach with a teacher in their caseload, a teacher outside it) and
a browser-like HTTP client that signs in with a password."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from server.core.roles import SessionState
from server.people.principal import PersonRole
from server.people.service import People
from server.storage.sessions import LessonPeople, SessionSettings

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


async def fake_recording(server: Any, teacher_id: str, *, school: str | None) -> tuple[str, str]:
    """An ended lesson of ``teacher_id`` with a recording on disk: (session, recording)."""
    record = await server.store.create(
        title="Reading, period 2",
        teacher_name="Mr Okafor",
        settings=SessionSettings(),
        people=LessonPeople(teacher_id=teacher_id, school_id=school),
    )
    await server.store.set_state(record.id, SessionState.LIVE, at=time.time() - 600)
    await server.store.set_state(record.id, SessionState.ENDED, at=time.time())
    rid = "r-" + record.id
    directory = server.config.recordings_dir / record.id / rid
    directory.mkdir(parents=True)
    (directory / "camera.webm").write_bytes(b"\x1a\x45\xdf\xa3" + b"0" * 100)
    (directory / "manifest.json").write_text(
        '{"state": "finalized", "tracks": [{"file": "camera.webm", "source": "camera",'
        ' "role": "teacher"}], "teacher_name": "Mr Okafor", "start_ms": 0, "end_ms": 1000}'
    )
    (directory / "events.jsonl").write_text("")
    await server.catalog.add(rid, record.id, directory, time.time() - 600)
    await server.catalog.finish(rid, {"state": "finalized", "duration_ms": 1000})
    return record.id, rid
