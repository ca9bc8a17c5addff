"""The pages over HTTPS, as a school would run them: behind Debian's nginx
with the README's configuration, and on Sidecoach's own `--self-signed`
certificate. Chromium gets the camera only in a secure context, so a teacher
going live proves the page was served over HTTPS."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import time
from pathlib import Path

import pytest

from server.ops.tls import CertificateNames, ensure_self_signed
from testkit.browser import (
    CHROMIUM,
    launched_chromium,
    page_errors,
    teacher_live_and_coach_watching,
)
from testkit.procs import REPO, Proc, free_port, running, sidecoach_cmd, sidecoach_env
from testkit.server import make_config, running_server

pytestmark = pytest.mark.browser

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
#: how long nginx / the server may take to start
START_TIMEOUT_S = 20


def readme_nginx_block() -> str:
    """The ```nginx block of the README: the configuration we tell admins to use."""
    readme = (REPO / "README.md").read_text()
    match = re.search(r"```nginx\n(.*?)```", readme, re.S)
    assert match, "README.md has no ```nginx block"
    return match.group(1)


def nginx_conf(tmp: Path, https_port: int, http_port: int, backend: str, cert: Path) -> Path:
    """The README's server blocks with this test's ports, certificate and
    backend, inside a minimal nginx.conf whose every path is under ``tmp``."""
    block = readme_nginx_block()
    for old, new in (
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("https://$host:443$request_uri", f"https://$host:{https_port}$request_uri"),
        ("/etc/ssl/coach.school.example/fullchain.pem", str(cert)),
        ("/etc/ssl/coach.school.example/privkey.pem", str(cert.with_name("self-signed-key.pem"))),
        ("http://127.0.0.1:8080", backend),
    ):
        assert old in block, f"README nginx block no longer has {old!r}"
        block = block.replace(old, new)
    temp = "\n".join(
        f"    {kind}_temp_path {tmp}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = tmp / "nginx.conf"
    conf.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\nworker_processes 1;\npid {tmp}/nginx.pid;\n"
        f"error_log {tmp}/error.log info;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n    access_log {tmp}/access.log;\n{temp}\n{block}}}\n"
    )
    return conf


@pytest.mark.slow
async def test_pages_work_through_nginx_over_https(tmp_path: Path) -> None:
    if not CHROMIUM.exists() or not Path(NGINX).exists():
        pytest.skip("needs /usr/bin/chromium and Debian's nginx")
    cert, _key, _ = ensure_self_signed(tmp_path / "tls", CertificateNames(("localhost",), ()))
    https_port, http_port = free_port(), free_port()
    public = f"https://localhost:{https_port}"
    async with running_server(make_config(tmp_path, public_url=public)) as server:
        conf = nginx_conf(tmp_path, https_port, http_port, server.url, cert)
        cmd = [NGINX, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)]
        with running(Proc(cmd, tmp_path / "nginx.out")) as nginx:
            _wait_listening(nginx, https_port)
            session = await server.create_session()
            async with launched_chromium() as browser:
                teacher, coach = await teacher_live_and_coach_watching(
                    browser,
                    public,
                    server.invite(session.id, "teacher"),
                    server.invite(session.id, "coach"),
                    ignore_https_errors=True,
                )
                assert await teacher.js("window.isSecureContext && location.protocol") == "https:"
                assert page_errors(teacher, coach) == []
            # plain HTTP is sent to HTTPS by the README's second server block
            conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
            conn.request("GET", "/join?token=x", headers={"Host": "localhost"})
            resp = conn.getresponse()
            assert (resp.status, resp.getheader("Location")) == (
                308,
                f"https://localhost:{https_port}/join?token=x",
            )
            conn.close()
    access = (tmp_path / "access.log").read_text()
    # signaling went through the proxy as a WebSocket (101 Switching Protocols)
    assert re.search(r'"GET /socket\.io/\?EIO=4&transport=websocket[^"]*" 101 ', access), access
    assert public.startswith("https://")


def _wait_listening(nginx: Proc, port: int) -> None:
    """Bounded wait until nginx accepts on ``port`` (it prints nothing when up)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if nginx.proc.poll() is not None:
            raise AssertionError(f"nginx exited: {nginx.output()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nginx not listening: {nginx.output()[-2000:]}") from None
            time.sleep(0.05)


@pytest.mark.slow
async def test_teacher_goes_live_on_the_self_signed_certificate(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    port = free_port()
    cmd = sidecoach_cmd(
        "serve", "--self-signed", "--demo", "--host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(tmp_path / "data"), "--ice-listen-ips", "127.0.0.1",
    )  # fmt: skip
    with running(Proc(cmd, tmp_path / "server.log", env=sidecoach_env())) as server:
        server.wait_output(r"Sidecoach is listening on https://", timeout=START_TIMEOUT_S)
        # the demo's links are printed once its lesson exists
        server.wait_output(r"(?m)^\s+coach\s+https://\S+$", timeout=START_TIMEOUT_S)
        links = dict(re.findall(r"^\s+(teacher|coach)\s+(https://\S+)$", server.output(), re.M))
        assert set(links) == {"teacher", "coach"}, server.output()
        base = f"https://127.0.0.1:{port}"
        async with launched_chromium() as browser:
            teacher, coach = await teacher_live_and_coach_watching(
                browser,
                base,
                links["teacher"].split("token=")[1],
                links["coach"].split("token=")[1],
                ignore_https_errors=True,
            )
            assert await teacher.js("window.isSecureContext && location.protocol") == "https:"
            await teacher.screenshot("teacher-self-signed-https")
            assert page_errors(teacher, coach) == []
