"""The CLI as an admin meets it: real subprocesses on a real data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from server.core.roles import Role
from server.core.tokens import verify_admin_token, verify_camera_token, verify_invite

REPO = Path(__file__).resolve().parent.parent


def run_cli(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECOACH_")}
    env["SIDECOACH_DATA_DIR"] = str(data_dir)
    env["SIDECOACH_PUBLIC_URL"] = "https://coach.school.example"
    proc = subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def secret_of(data_dir: Path) -> str:
    return (data_dir / "secret").read_text().strip()


def token_of(url: str) -> str:
    parts = urlsplit(url)
    assert url.startswith("https://coach.school.example/join?")
    return parse_qs(parts.query)["token"][0]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def create(data_dir: Path, *extra: str) -> dict[str, Any]:
    proc = run_cli(
        data_dir,
        "session",
        "create",
        "--title",
        "Year 5 reading",
        "--teacher-name",
        "Mr Ali",
        *extra,
    )
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def test_session_create_prints_session_and_working_links(data_dir: Path) -> None:
    out = create(data_dir, "--no-recording", "--scheduled-for", "2031-09-01T08:30:00Z")
    session = out["session"]
    assert session["title"] == "Year 5 reading"
    assert session["teacher_name"] == "Mr Ali"
    assert session["state"] == "scheduled"
    assert session["settings"]["recording"] is False
    assert session["scheduled_for"] == 1946017800.0
    secret = secret_of(data_dir)
    assert set(out["invites"]) == {"teacher", "coach", "observer"}
    for role, url in out["invites"].items():
        claims = verify_invite(secret, token_of(url))
        assert (claims.session_id, claims.role) == (session["id"], role)


@pytest.mark.slow
def test_session_list_and_end(data_dir: Path) -> None:
    a = create(data_dir)["session"]
    b = create(data_dir)["session"]
    listed = json.loads(run_cli(data_dir, "session", "list").stdout)["sessions"]
    assert [s["id"] for s in listed] == [a["id"], b["id"]]

    ended = json.loads(run_cli(data_dir, "session", "end", a["id"]).stdout)["session"]
    assert ended["state"] == "ended" and ended["ended_at"] is not None

    out = run_cli(data_dir, "session", "list", "--state", "scheduled").stdout
    assert [s["id"] for s in json.loads(out)["sessions"]] == [b["id"]]
    out = run_cli(data_dir, "session", "list", "--state", "ended").stdout
    assert [s["id"] for s in json.loads(out)["sessions"]] == [a["id"]]


def test_admin_token_verifies(data_dir: Path) -> None:
    token = run_cli(data_dir, "admin-token", "--ttl-s", "120").stdout.strip()
    verify_admin_token(secret_of(data_dir), token)


@pytest.mark.slow
def test_invite_link(data_dir: Path) -> None:
    sid = create(data_dir)["session"]["id"]
    url = run_cli(data_dir, "invite", sid, "--role", "coach", "--name", "Dr Chen").stdout.strip()
    claims = verify_invite(secret_of(data_dir), token_of(url))
    assert (claims.session_id, claims.role, claims.name) == (sid, Role.COACH, "Dr Chen")


@pytest.mark.slow
def test_camera_token(data_dir: Path) -> None:
    sid = create(data_dir)["session"]["id"]
    out = json.loads(run_cli(data_dir, "camera-token", sid, "--name", "Room 12").stdout)
    assert out["whip_url"] == f"https://coach.school.example/whip/{sid}"
    claims = verify_camera_token(secret_of(data_dir), out["token"])
    assert (claims.session_id, claims.name) == (sid, "Room 12")
    # a camera is not an invite role: no link can carry it
    refused = run_cli(data_dir, "invite", sid, "--role", "camera", check=False)
    assert refused.returncode != 0 and "invalid choice" in refused.stderr


@pytest.mark.slow
def test_errors_are_clear_and_fail(data_dir: Path) -> None:
    proc = run_cli(data_dir, "invite", "nope", "--role", "coach", check=False)
    assert proc.returncode == 1
    assert "session_not_found" in proc.stderr
    proc = run_cli(
        data_dir, "session", "create", "--title", " ", "--teacher-name", "T", check=False
    )
    assert proc.returncode == 1
    assert "invalid_message" in proc.stderr
    proc = run_cli(data_dir, "session", "list", "--state", "paused", check=False)
    assert proc.returncode == 2
