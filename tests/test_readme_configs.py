"""The README's nginx and coturn configurations, as an admin would use them:
rendered with this test's addresses, ports and certificate, checked by
``nginx -t`` and run by Debian's nginx (in the ``http`` context, the port-80
redirect keeping a non-standard HTTPS port) and coturn (its log directory
made as the README says; a relay allocated with a credential Sidecoach made,
refused with another secret). Everything on 127.0.0.1, stopped by PID."""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from server.core.config import Config
from server.live.media_failure import probe_turn, turn_server
from server.ops.tls import CertificateNames, ensure_self_signed
from testkit.procs import Proc, free_port, running
from testkit.server import make_config, running_server

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
TURN_SECRET = "readme-turn-secret-" + "k" * 24


def block(pattern: str) -> str:
    match = re.search(pattern, README, re.S)
    assert match, f"README.md has no block matching {pattern!r}"
    return match.group(1)


def render(text: str, replacements: list[tuple[str, str]]) -> str:
    for old, new in replacements:
        assert old in text, f"the README block no longer has {old!r}"
        text = text.replace(old, new)
    return text


def certificate(tmp: Path) -> tuple[Path, Path]:
    names = CertificateNames(("localhost", "coach.school.example"), ())
    cert, key, _ = ensure_self_signed(tmp / "tls", names)
    return cert, key


def wait_port(proc: Proc, port: int, what: str) -> None:
    """Bounded wait until ``port`` on 127.0.0.1 accepts (nginx prints nothing when up)."""
    deadline = time.monotonic() + 20
    while True:
        if proc.proc.poll() is not None:
            raise AssertionError(f"{what} exited: {proc.output()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not listening: {proc.output()[-2000:]}") from None
            time.sleep(0.05)


def nginx_conf(tmp: Path, https_port: int, http_port: int, backend: str) -> Path:
    cert, key = certificate(tmp)
    server_blocks = render(
        block(r"```nginx\n(.*?)```"),
        [
            ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
            ("listen 80;", f"listen 127.0.0.1:{http_port};"),
            ("https://$host:443$request_uri", f"https://$host:{https_port}$request_uri"),
            ("/etc/ssl/coach.school.example/fullchain.pem", str(cert)),
            ("/etc/ssl/coach.school.example/privkey.pem", str(key)),
            ("http://127.0.0.1:8080", backend),
        ],
    )
    temp = "".join(
        f"    {kind}_temp_path {tmp}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = tmp / "nginx.conf"
    # what Debian's nginx.conf is around conf.d/*.conf: the README's block
    # goes inside http { }
    conf.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\nworker_processes 1;\npid {tmp}/nginx.pid;\n"
        f"error_log {tmp}/error.log info;\nevents {{ worker_connections 64; }}\n"
        f"http {{\n    access_log {tmp}/access.log;\n{temp}{server_blocks}}}\n"
    )
    return conf


async def test_the_readme_nginx_block_checks_runs_and_keeps_the_https_port(
    tmp_path: Path,
) -> None:
    if not Path(NGINX).exists():
        pytest.skip("needs Debian's nginx")
    https_port, http_port = free_port(), free_port()
    async with running_server(make_config(tmp_path / "sidecoach")) as server:
        conf = nginx_conf(tmp_path, https_port, http_port, server.url)
        check = subprocess.run(
            [NGINX, "-t", "-c", str(conf), "-p", str(tmp_path)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert check.returncode == 0, check.stderr
        assert "syntax is ok" in check.stderr
        cmd = [NGINX, "-c", str(conf), "-p", str(tmp_path)]
        with running(Proc(cmd, tmp_path / "nginx.out")) as nginx:
            wait_port(nginx, https_port, "nginx")
            # plain HTTP goes to the same path on HTTPS, its port kept
            conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
            conn.request("GET", "/join?token=x", headers={"Host": "coach.school.example"})
            resp = conn.getresponse()
            assert (resp.status, resp.getheader("Location")) == (
                308,
                f"https://coach.school.example:{https_port}/join?token=x",
            )
            conn.close()
            # HTTPS reaches Sidecoach through the proxy (off the event loop
            # the server runs on)
            def healthz() -> tuple[int, bytes]:
                ctx = ssl._create_unverified_context()
                tls = http.client.HTTPSConnection("127.0.0.1", https_port, timeout=5, context=ctx)
                try:
                    tls.request("GET", "/healthz", headers={"Host": "coach.school.example"})
                    resp = tls.getresponse()
                    return resp.status, resp.read()
                finally:
                    tls.close()

            assert await asyncio.to_thread(healthz) == (200, b'{"status": "ok"}')


def coturn_conf(tmp: Path, port: int, tls_port: int) -> tuple[Path, Path]:
    cert, key = certificate(tmp)
    log_dir = tmp / "log" / "turnserver"
    log_dir.mkdir(parents=True)  # the README's `install -d` step
    text = render(
        block(r"```ini\n(# the same secret as SIDECOACH_TURN_SECRET.*?)```"),
        [
            ("static-auth-secret=change-me-to-a-long-random-string",
             f"static-auth-secret={TURN_SECRET}"),
            ("listening-port=3478", f"listening-port={port}"),
            ("tls-listening-port=443", f"tls-listening-port={tls_port}"),
            ("/etc/ssl/turn.school.example/fullchain.pem", str(cert)),
            ("/etc/ssl/turn.school.example/privkey.pem", str(key)),
            ("min-port=49152", "min-port=49400"),
            ("max-port=65535", "max-port=49500"),
            ("/var/log/turnserver/turn.log", str(log_dir / "turn.log")),
        ],
    )  # fmt: skip
    conf = tmp / "turnserver.conf"
    conf.write_text(
        text
        + f"\nlistening-ip=127.0.0.1\npidfile={tmp}/turnserver.pid\nuserdb={tmp}/turndb\n"
    )
    return conf, log_dir / "turn.log"


async def test_the_readme_coturn_config_runs_and_takes_sidecoach_credentials(
    tmp_path: Path,
) -> None:
    if not Path(TURNSERVER).exists():
        pytest.skip("needs coturn's turnserver")
    port, tls_port = free_port(), free_port()
    conf, log = coturn_conf(tmp_path, port, tls_port)
    with running(Proc([TURNSERVER, "-c", str(conf)], tmp_path / "coturn.out")) as coturn:
        deadline = time.monotonic() + 20
        while "Total General servers" not in (log.read_text() if log.exists() else ""):
            assert coturn.proc.poll() is None, coturn.output()[-2000:]
            assert time.monotonic() < deadline, (log.read_text() if log.exists() else "no log")
            time.sleep(0.05)
        wait_port(coturn, port, "coturn")
        logged = log.read_text()
        assert "CONFIG ERROR" not in logged and "Bad configuration" not in logged, logged
        config = Config(
            turn_secret=TURN_SECRET,
            turn_urls=(f"turn:127.0.0.1:{port}?transport=udp",),
        )
        for transport in ("udp", "tcp"):
            url = f"turn:127.0.0.1:{port}?transport={transport}"
            relay = turn_server(Config(turn_secret=TURN_SECRET, turn_urls=(url,)))
            assert relay is not None and await probe_turn(relay) == "accepted", transport
        other = turn_server(Config(turn_secret="x" * 40, turn_urls=config.turn_urls))
        assert other is not None and await probe_turn(other) == "refused"
