"""A real OpenID Connect provider on loopback for sign-in tests:
``oidc-provider-mock`` (from PyPI) in its own process, started and stopped
by PID. Its authorization page is a form: a user types a ``sub`` (known
users get the claims given here) and is sent back with a code."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from testkit.procs import Proc, free_port

CLIENT_ID = "sidecoach-test"


@dataclass
class Provider:
    issuer: str
    proc: Proc


@contextmanager
def oidc_provider(workdir: Path, users: list[dict[str, object]]) -> Iterator[Provider]:
    """The provider with ``users`` (claims, each with a ``sub``), nonce required."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "oidc_provider_mock",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--require-nonce",
        "true",
    ]
    for claims in users:
        cmd += ["--user-claims", json.dumps(claims)]
    workdir.mkdir(parents=True, exist_ok=True)
    proc = Proc(cmd, workdir / f"oidc-{port}.log")
    try:
        proc.wait_output(r"[Rr]unning on http", timeout=30)
        yield Provider(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.stop()


async def provider_sign_in(http: aiohttp.ClientSession, authorize_url: str, sub: str) -> str:
    """What a person does on the provider's page: choose ``sub`` and
    authorize. Returns where the provider sends the browser back."""
    page = await http.get(authorize_url, allow_redirects=False)
    assert page.status == 200, await page.text()
    html = await page.text()
    action = re.search(r'<form[^>]*action="([^"]*)"', html)
    url = authorize_url if action is None or not action.group(1) else action.group(1)
    if url.startswith("/"):
        url = authorize_url.split("/oauth2")[0] + url
    r = await http.post(url.replace("&amp;", "&"), data={"sub": sub}, allow_redirects=False)
    assert r.status in (302, 303), (r.status, await r.text())
    return r.headers["Location"]
