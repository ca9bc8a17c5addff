"""Admin HTTP API against a real aiohttp server on loopback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.core.config import Config
from server.core.roles import Role, SessionState
from server.core.tokens import issue_admin_token, issue_invite, verify_invite
from server.http.admin import setup_http_api
from server.http.errors import error_middleware
from server.ops.metrics import Metrics
from server.storage.lessons import open_lessons
from server.storage.sessions import SessionStore

SECRET = "http-api-test-secret-0123456789-abcdefghijklmnop"
BASE_URL = "https://coach.example.org"

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
Client = TestClient[web.Request, web.Application]


class RecordingControl:
    """Stands in for the live session manager: records calls, ends in the store."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self.ended: list[str] = []
        self.live: dict[str, dict[str, Any]] = {}

    async def end_session(self, session_id: str, reason: str) -> None:
        self.ended.append(session_id)
        record = await self.store.get(session_id)
        if record.state is SessionState.LIVE:
            await self.store.set_state(session_id, SessionState.ENDED, at=time.time())
        self.live.pop(session_id, None)

    def live_summary(self, session_id: str) -> dict[str, Any] | None:
        return self.live.get(session_id)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SessionStore]:
    s = await open_lessons(tmp_path)
    yield s
    await s.close()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(data_dir=tmp_path, secret=SECRET, public_url=BASE_URL + "/")


@pytest.fixture
def control(store: SessionStore) -> RecordingControl:
    return RecordingControl(store)


@pytest.fixture
async def client(
    aiohttp_client: ClientFactory, config: Config, store: SessionStore, control: RecordingControl
) -> Client:
    app = web.Application(middlewares=[error_middleware(Metrics())])
    setup_http_api(app, config=config, store=store, deployment=control)  # type: ignore[arg-type]
    return await aiohttp_client(app)


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_admin_token(SECRET, ttl_s=600)}


def token_of(url: str) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == BASE_URL
    assert parts.path == "/join"
    return parse_qs(parts.query)["token"][0]


async def create(client: Client, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("title", "Grade 3 maths")
    body.setdefault("teacher_name", "Ms Rivera")
    resp = await client.post("/api/sessions", json=body, headers=auth)
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def assert_error(resp: Any, status: int, code: str) -> None:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


async def test_healthz_needs_no_token(client: Client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Bearer " + issue_admin_token("x" * 40, ttl_s=600)},
        {"Authorization": "Bearer " + issue_invite(SECRET, "s", Role.TEACHER, ttl_s=600)},
    ],
)
async def test_api_refuses_missing_or_bad_admin_token(
    client: Client, headers: dict[str, str]
) -> None:
    for method, path in [
        ("GET", "/api/sessions"),
        ("POST", "/api/sessions"),
        ("GET", "/api/sessions/abc"),
        ("POST", "/api/sessions/abc/invites"),
        ("POST", "/api/sessions/abc/end"),
    ]:
        resp = await client.request(method, path, headers=headers, json={"title": "x"})
        await assert_error(resp, 401, "unauthorized")
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_expired_admin_token(client: Client) -> None:
    token = issue_admin_token(SECRET, ttl_s=60, now=time.time() - 120)
    resp = await client.get("/api/sessions", headers={"Authorization": f"Bearer {token}"})
    await assert_error(resp, 401, "token_expired")


async def test_create_returns_invites_that_verify(
    client: Client, auth: dict[str, str], store: SessionStore
) -> None:
    data = await create(
        client,
        auth,
        settings={"recording": False, "prompts": ["Wait time", "Proximity"]},
        scheduled_for="2031-09-01T08:30:00+00:00",
    )
    session = data["session"]
    assert session["title"] == "Grade 3 maths"
    assert session["state"] == "scheduled"
    assert session["scheduled_for"] == 1946017800.0
    assert session["settings"]["recording"] is False
    assert session["settings"]["prompts"] == ["Wait time", "Proximity"]
    assert session["settings"]["whisper_single"] is False
    assert set(data["invites"]) == {"teacher", "coach", "observer"}
    for role, url in data["invites"].items():
        claims = verify_invite(SECRET, token_of(url))
        assert claims.session_id == session["id"]
        assert claims.role == role
        # a link sent now still works when the scheduled lesson starts
        assert claims.expires_at > 1946017800
    teacher = verify_invite(SECRET, token_of(data["invites"]["teacher"]))
    assert teacher.name == "Ms Rivera"
    stored = await store.get(session["id"])
    assert stored.settings.recording is False


async def test_list_and_get(
    client: Client, auth: dict[str, str], store: SessionStore, control: RecordingControl
) -> None:
    a = (await create(client, auth, title="A"))["session"]
    b = (await create(client, auth, title="B"))["session"]
    await store.set_state(b["id"], SessionState.LIVE, at=time.time())
    control.live[b["id"]] = {"participants": {"teacher": 1, "coach": 2}}

    resp = await client.get("/api/sessions", headers=auth)
    assert resp.status == 200
    listed = (await resp.json())["sessions"]
    assert [s["title"] for s in listed] == ["A", "B"]
    assert listed[0]["live"] is None
    assert listed[1]["live"] == {"participants": {"teacher": 1, "coach": 2}}

    resp = await client.get("/api/sessions?state=live", headers=auth)
    assert [s["id"] for s in (await resp.json())["sessions"]] == [b["id"]]
    resp = await client.get("/api/sessions?state=scheduled,ended", headers=auth)
    assert [s["id"] for s in (await resp.json())["sessions"]] == [a["id"]]
    resp = await client.get("/api/sessions?state=paused", headers=auth)
    await assert_error(resp, 400, "invalid_message")

    resp = await client.get(f"/api/sessions/{a['id']}", headers=auth)
    assert resp.status == 200
    got = await resp.json()
    assert got["session"] == a
    assert verify_invite(SECRET, token_of(got["invites"]["coach"])).session_id == a["id"]


async def test_unknown_session_is_404(client: Client, auth: dict[str, str]) -> None:
    for method, path in [
        ("GET", "/api/sessions/nope"),
        ("POST", "/api/sessions/nope/invites"),
        ("POST", "/api/sessions/nope/end"),
    ]:
        resp = await client.request(method, path, headers=auth)
        await assert_error(resp, 404, "session_not_found")


async def test_bad_bodies_are_400(
    client: Client, auth: dict[str, str], store: SessionStore
) -> None:
    cases: list[Any] = [
        b"{not json",
        b"[1, 2]",
        b"",
        {"title": "", "teacher_name": "T"},
        {"title": "x" * 121, "teacher_name": "T"},
        {"teacher_name": "T"},
        {"title": "A", "teacher_name": "T", "settings": {"prompts": ["x" * 81]}},
        {"title": "A", "teacher_name": "T", "settings": {"recording": "yes"}},
        {"title": "A", "teacher_name": "T", "scheduled_for": "next tuesday"},
        {"title": "A", "teacher_name": "T", "colour": "red"},
    ]
    for body in cases:
        if isinstance(body, bytes):
            resp = await client.post("/api/sessions", data=body, headers=auth)
        else:
            resp = await client.post("/api/sessions", json=body, headers=auth)
        await assert_error(resp, 400, "invalid_message")
    assert await store.list() == []


async def test_oversized_body_is_refused(
    client: Client, auth: dict[str, str], config: Config, store: SessionStore
) -> None:
    big = {"title": "A", "teacher_name": "T", "pad": "x" * config.limits.max_message_bytes}
    resp = await client.post("/api/sessions", json=big, headers=auth)
    await assert_error(resp, 413, "message_too_large")

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(70):
            yield b" " * 1024

    resp = await client.post("/api/sessions", data=chunked(), headers=auth)
    await assert_error(resp, 413, "message_too_large")
    assert await store.list() == []


async def test_fresh_invite(client: Client, auth: dict[str, str]) -> None:
    sid = (await create(client, auth))["session"]["id"]
    resp = await client.post(
        f"/api/sessions/{sid}/invites",
        json={"role": "observer", "name": "Principal Ng", "ttl_s": 300},
        headers=auth,
    )
    assert resp.status == 201
    body = await resp.json()
    claims = verify_invite(SECRET, token_of(body["url"]))
    assert (claims.session_id, claims.role, claims.name) == (sid, Role.OBSERVER, "Principal Ng")
    assert claims.expires_at == body["expires_at"]
    assert abs(claims.expires_at - (time.time() + 300)) < 5

    resp = await client.post(f"/api/sessions/{sid}/invites", headers=auth)
    assert resp.status == 201
    assert verify_invite(SECRET, (await resp.json())["token"]).role is Role.COACH

    for bad in ({"role": "principal"}, {"ttl_s": 0}, {"ttl_s": 10**9}, {"ttl_s": "60"}):
        resp = await client.post(f"/api/sessions/{sid}/invites", json=bad, headers=auth)
        await assert_error(resp, 400, "invalid_message")


async def test_end_calls_control_and_marks_ended(
    client: Client, auth: dict[str, str], store: SessionStore, control: RecordingControl
) -> None:
    live_id = (await create(client, auth, title="Live"))["session"]["id"]
    await store.set_state(live_id, SessionState.LIVE, at=time.time())
    scheduled_id = (await create(client, auth, title="Later"))["session"]["id"]

    for sid in (live_id, scheduled_id):
        resp = await client.post(f"/api/sessions/{sid}/end", headers=auth)
        assert resp.status == 200
        session = (await resp.json())["session"]
        assert session["state"] == "ended"
        assert session["ended_at"] is not None
        assert (await store.get(sid)).state is SessionState.ENDED
    assert control.ended == [live_id, scheduled_id]

    # ending again is harmless and does not bother the live manager
    resp = await client.post(f"/api/sessions/{live_id}/end", headers=auth)
    assert resp.status == 200
    assert control.ended == [live_id, scheduled_id]

    # an ended session hands out no invites
    resp = await client.get(f"/api/sessions/{live_id}", headers=auth)
    assert (await resp.json())["invites"] == {}
    resp = await client.post(f"/api/sessions/{live_id}/invites", headers=auth)
    await assert_error(resp, 409, "session_ended")


async def test_setup_requires_secret(store: SessionStore, control: RecordingControl) -> None:
    with pytest.raises(ValueError):
        setup_http_api(web.Application(), config=Config(), store=store, deployment=control)  # type: ignore[arg-type]
