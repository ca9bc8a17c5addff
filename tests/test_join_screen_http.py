"""What the join screen and the installed teacher page read over HTTP:
``GET /api/lesson`` (the invite's lesson and who is there, before joining,
only what the policy sends the invite's role live) and the web app
manifest with its icons."""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator

import aiohttp
import pytest

from server.core.tokens import issue_admin_token
from testkit.peers import Participant
from testkit.server import TEST_SECRET, LiveServer

pytestmark = pytest.mark.integration


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def lesson(
    http: aiohttp.ClientSession, url: str, token: str
) -> tuple[int, dict[str, object]]:
    async with http.get(f"{url}/api/lesson", headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.json()


async def test_the_join_screen_learns_who_is_there(
    live_server: LiveServer, http: aiohttp.ClientSession
) -> None:
    session = await live_server.create_session("Fractions, period 3")
    coach_token = live_server.invite(session.id, "coach", name="Ana")
    status, body = await lesson(http, live_server.url, coach_token)
    assert status == 200, body
    assert body["title"] == "Fractions, period 3" and body["teacherName"] == "Ms. Rivera"
    assert body["here"] == {} and body["classroomLive"] is False

    teacher = Participant(live_server.url, live_server.invite(session.id, "teacher"))
    other = Participant(live_server.url, live_server.invite(session.id, "coach"))
    try:
        await teacher.join()
        await other.join()
        for token in (coach_token, live_server.invite(session.id, "observer")):
            status, body = await lesson(http, live_server.url, token)
            assert status == 200 and body["here"] == {"teacher": 1, "coach": 1}, body
    finally:
        await teacher.close()
        await other.close()


async def test_the_lesson_before_join_needs_an_invite_to_it(
    live_server: LiveServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{live_server.url}/api/lesson") as r:
        assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"
    status, body = await lesson(http, live_server.url, "not-a-token")
    assert status == 401, body
    # an admin token names no lesson
    status, body = await lesson(http, live_server.url, issue_admin_token(TEST_SECRET, ttl_s=60))
    assert status == 403 and body["error"]["code"] == "forbidden", body  # type: ignore[index]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_the_teacher_page_can_be_installed(
    live_server: LiveServer, http: aiohttp.ClientSession
) -> None:
    session = await live_server.create_session()
    async with http.get(
        f"{live_server.url}/join?token={live_server.invite(session.id, 'teacher')}"
    ) as r:
        page = await r.text()
    assert '<link rel="manifest" href="/static/manifest.webmanifest">' in page
    assert '<meta name="theme-color"' in page

    async with http.get(f"{live_server.url}/static/manifest.webmanifest") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/manifest+json"
        manifest = json.loads(await r.text())
    assert manifest["name"] and manifest["short_name"]
    assert manifest["start_url"].startswith("/") and manifest["display"] == "standalone"
    sizes = set()
    for icon in manifest["icons"]:
        async with http.get(live_server.url + icon["src"]) as r:
            assert r.status == 200, icon
            assert r.headers["Content-Type"] == icon["type"], icon
            data = await r.read()
        if icon["type"] == "image/png":
            w, h = png_size(data)
            assert icon["sizes"] == f"{w}x{h}", icon
            sizes.add(w)
    # what Chromium needs to offer "Install": 192 and 512 pixel icons
    assert {192, 512} <= sizes
