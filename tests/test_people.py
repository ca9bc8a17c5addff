"""People over HTTP against a real server: password sign-in, the home
pages, scheduling, joining live, CSRF, open redirects, brute force, session
fixation, a coach reading outside their caseload, a disabled person."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from server.http.login import PEOPLE_KEY
from server.people.service import People
from testkit.people import Browser, District, seed_district
from testkit.server import LiveServer


def people_of(server: LiveServer) -> People:
    return server.app[PEOPLE_KEY]


@pytest.fixture
async def district(live_server: LiveServer) -> District:
    return await seed_district(people_of(live_server))


@pytest.fixture
async def browsers(live_server: LiveServer) -> AsyncIterator[list[Browser]]:
    made: list[Browser] = []
    yield made
    for b in made:
        await b.close()


async def browser(live_server: LiveServer, made: list[Browser], email: str | None = None) -> Browser:
    b = Browser(live_server.url)
    made.append(b)
    if email is not None:
        r = await b.sign_in(email)
        assert r.status == 303, await r.text()
    return b


async def test_teacher_signs_in_sees_next_lesson_and_goes_live(
    live_server: LiveServer, district: District, browsers: list[Browser]
) -> None:
    coach = await browser(live_server, browsers, "rivera@district.example.org")
    when = datetime.fromtimestamp(time.time() + 3600).strftime("%Y-%m-%dT%H:%M")
    r = await coach.post("/lessons", {"teacher": district.teacher, "title": "Fractions",
                                      "when": when, "recording": "on"})  # fmt: skip
    assert r.status == 303, await r.text()
    teacher = await browser(live_server, browsers, "okafor@district.example.org")
    home = await teacher.get("/home")
    html = await home.text()
    assert "Next: " in html and "with Ms Rivera" in html and "Go live" in html
    lesson_id = re.search(r'/lessons/([^/]+)/go', html).group(1)  # type: ignore[union-attr]
    go = await teacher.post(f"/lessons/{lesson_id}/go")
    assert go.status == 303 and go.headers["Location"].startswith("/join?token=")
    page = await teacher.get(go.headers["Location"])
    assert page.status == 200 and "teacher" in await page.text()
