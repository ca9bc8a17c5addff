"""The page routes over plain HTTP (no browser): role pages, safe embedding
of page data, error statuses, security headers, vendored libraries."""

from __future__ import annotations

import json
import re

import aiohttp

from server.http.pages import NODE_MODULES_DIR, VENDOR_FILES
from testkit.server import LiveServer


async def fetch(url: str, **params: str) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as http, http.get(url, params=params) as res:
        return res.status, dict(res.headers), await res.text()


def page_data(html: str) -> dict[str, object]:
    m = re.search(r'<script type="application/json" id="sidecoach-page">(.*?)</script>', html, re.S)
    assert m, "no page data"
    return json.loads(m.group(1))  # type: ignore[no-any-return]


async def test_each_role_gets_its_page_with_escaped_data(live_server: LiveServer) -> None:
    title = "</script><script>alert(1)</script> & <b>"
    session = await live_server.create_session(title)
    for role in ("teacher", "coach", "observer"):
        token = live_server.invite(session.id, role)
        status, headers, html = await fetch(f"{live_server.url}/join", token=token)
        assert status == 200
        assert f'src="/static/js/{role}.js"' in html
        assert "<script>alert(1)" not in html and "<b>" not in html
        data = page_data(html)
        assert data["role"] == role and data["sessionId"] == session.id
        assert data["title"] == title and data["token"] == token
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Cache-Control"] == "no-store"


async def test_ended_or_unknown_sessions_and_bad_tokens(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    status, _, html = await fetch(f"{live_server.url}/join", token="not-a-token")
    assert status == 403 and "valid" in html and "sidecoach-page" not in html
    status, _, html = await fetch(f"{live_server.url}/join")
    assert status == 401
    status, _, _ = await fetch(
        f"{live_server.url}/join", token=live_server.invite("no-such-session", "coach")
    )
    assert status == 404
    await live_server.manager.end_session(session.id)
    status, _, html = await fetch(
        f"{live_server.url}/join", token=live_server.invite(session.id, "teacher")
    )
    # an invite to an ended lesson opens what is left of it, not the live page
    assert status == 200 and "has ended" in html and "ended.js" in html
    assert "teacher.js" not in html
    status, headers, svg = await fetch(f"{live_server.url}/favicon.ico")
    assert status == 200 and headers["Content-Type"] == "image/svg+xml" and "<svg" in svg


async def test_lobby_static_and_vendor_files(live_server: LiveServer) -> None:
    status, headers, html = await fetch(f"{live_server.url}/")
    assert status == 200 and "/static/js/lobby.js" in html
    assert page_data(html)["defaults"]
    status, _, css = await fetch(f"{live_server.url}/static/css/sidecoach.css")
    assert status == 200 and ".cue-card" in css
    status, _, _ = await fetch(f"{live_server.url}/static/../server/pages.py")
    assert status in (403, 404)
    status, _, _ = await fetch(f"{live_server.url}/vendor/package.json")
    assert status == 404
    for name, rel in VENDOR_FILES.items():
        status, headers, body = await fetch(f"{live_server.url}/vendor/{name}")
        if (NODE_MODULES_DIR / rel).is_file():
            kind = "text/css" if name.endswith(".css") else "text/javascript"
            assert status == 200 and headers["Content-Type"].startswith(kind)
            assert len(body) > 1000
        else:  # npm install has not run: a clear 503, never a crash
            assert status == 503
