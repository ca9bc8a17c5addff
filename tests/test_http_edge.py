"""The HTTP edge: no credential in any log line, nosniff on what we serve,
/metrics, and the admin API's refusals (deep JSON, too many sessions)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from server.core.config import Limits
from server.core.tokens import issue_admin_token
from server.ops.access_log import redact_url
from testkit.peers import Participant, PatternVideoTrack, wait_for
from testkit.server import TEST_SECRET, LiveServer, make_config, running_server

pytestmark = pytest.mark.integration


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def test_redact_url() -> None:
    assert redact_url("/join?token=abc&x=1") == "/join?token=REDACTED&x=1"
    assert redact_url("/a?admin=s3cret") == "/a?admin=REDACTED"
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    assert jwt not in redact_url(f"https://h/x?t={jwt}")
    assert redact_url("/healthz") == "/healthz"


async def test_no_minted_token_reaches_the_log(
    live_server: LiveServer, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Joins, the admin API and recording reads, with the access log and
    every logger at DEBUG: not one of the tokens this run minted is logged."""
    caplog.set_level(logging.DEBUG)
    url = live_server.url
    admin = issue_admin_token(TEST_SECRET, ttl_s=600)
    auth = {"Authorization": f"Bearer {admin}"}
    minted = [admin]
    async with http.post(
        f"{url}/api/sessions", json={"title": "Log test", "teacher_name": "T"}, headers=auth
    ) as resp:
        created = await resp.json()
    session_id = created["session"]["id"]
    invite_tokens = [u.split("token=")[1] for u in created["invites"].values()]
    minted += invite_tokens
    async with http.post(
        f"{url}/api/sessions/{session_id}/invites", json={"role": "coach"}, headers=auth
    ) as resp:
        minted.append((await resp.json())["token"])
    async with http.get(f"{url}/api/sessions/{session_id}", headers=auth) as resp:
        minted += [u.split("token=")[1] for u in (await resp.json())["invites"].values()]
    teacher_token, coach_token = invite_tokens[0], minted[-4]
    for token in (teacher_token, coach_token, "not-a-token"):
        async with http.get(f"{url}/join", params={"token": token}) as resp:
            await resp.read()
    teacher, coach = Participant(url, teacher_token), Participant(url, coach_token)
    try:
        await teacher.join()
        await coach.join()
        await teacher.publish(PatternVideoTrack(), "camera")  # recording starts: going live
        await wait_for(lambda: teacher.got("recording-state", state="recording") != [])
        forged = live_server.invite(session_id, "observer")
        minted.append(forged)
        recordings: list[dict[str, str]] = []
        for _ in range(100):  # the catalog has the recording a moment after it starts
            async with http.get(f"{url}/api/recordings", params={"token": coach_token}) as resp:
                recordings = (await resp.json())["recordings"]
            if recordings:
                break
            await asyncio.sleep(0.1)
        async with http.get(f"{url}/api/recordings", headers=auth) as resp:
            await resp.read()
        for rec in recordings:
            rid = rec["id"]
            async with http.get(f"{url}/api/recordings/{rid}?token={forged}") as resp:
                await resp.read()
            async with http.get(
                f"{url}/recordings/{rid}/manifest.json", params={"token": coach_token}
            ) as resp:
                await resp.read()
        assert recordings
    finally:
        await teacher.close()
        await coach.close()
    text = "\n".join(
        [caplog.text, *(r.getMessage() for r in caplog.records), *map(str, caplog.records)]
    )
    assert "GET /join?token=REDACTED" in text  # the access log was on and captured
    assert "/api/recordings?token=REDACTED" in text
    leaked = [t for t in minted if t in text]
    assert not leaked, f"{len(leaked)} of {len(minted)} minted tokens were logged"


async def test_json_and_recordings_carry_nosniff_and_metrics_are_served(
    live_server: LiveServer, http: aiohttp.ClientSession
) -> None:
    for path in ("/healthz", "/api/sessions", "/api/recordings", "/recordings/x/y.webm"):
        async with http.get(live_server.url + path) as resp:
            assert resp.headers.get("X-Content-Type-Options") == "nosniff", path
    async with http.get(f"{live_server.url}/metrics") as resp:
        assert resp.status == 200
        body = await resp.text()
    assert "sidecoach_signaling_messages_total" in body
    assert "sidecoach_http_refusals_total" in body


async def test_admin_api_refuses_deep_json_and_session_floods(
    tmp_path: Path, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path, limits=Limits(sessions_per_admin_token_per_minute=3))
    async with running_server(config) as server:
        auth = {"Authorization": f"Bearer {issue_admin_token(TEST_SECRET, ttl_s=600)}"}
        deep = "[" * 100_000 + "]" * 100_000
        for body in (deep, '{"title": ' + deep[:60_000] + "}"):
            async with http.post(
                f"{server.url}/api/sessions", data=body[:60_000], headers=auth
            ) as resp:
                assert resp.status == 400, await resp.text()
                assert (await resp.json())["error"]["code"] == "invalid_message"
        statuses = []
        for i in range(5):
            async with http.post(
                f"{server.url}/api/sessions",
                json={"title": f"s{i}", "teacher_name": "T"},
                headers=auth,
            ) as resp:
                statuses.append(resp.status)
        assert statuses == [201, 201, 201, 429, 429]
        # another admin token is not held back by the first one's flood
        other = {"Authorization": f"Bearer {issue_admin_token(TEST_SECRET, ttl_s=601)}"}
        async with http.post(
            f"{server.url}/api/sessions", json={"title": "x", "teacher_name": "T"}, headers=other
        ) as resp:
            assert resp.status == 201
    assert not [r for r in caplog.records if r.exc_info]
