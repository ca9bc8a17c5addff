"""HTTPS as an admin meets it: `serve --self-signed` / `--tls-cert`, the
printed fingerprint, the HTTP -> HTTPS redirect, https invite links, and
configuration errors that name the variable."""

from __future__ import annotations

import datetime
import hashlib
import http.client
import ipaddress
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from server.core.config import Config, check_network_settings
from server.core.errors import ConfigError
from server.core.settings import config_from_env
from server.ops.tls import (
    SELF_SIGNED_CERT,
    SELF_SIGNED_KEY,
    CertificateNames,
    certificate_names,
    ensure_self_signed,
)
from testkit.procs import Proc, free_port, running, sidecoach_cmd, sidecoach_env


def served_fingerprint(port: int) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def https_get(port: int, path: str) -> tuple[int, bytes]:
    ctx = ssl._create_unverified_context()
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=ctx)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def serve(tmp_path: Path, name: str, *args: str, **env: str) -> Proc:
    port = free_port()
    cmd = sidecoach_cmd(
        "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path / "data"),
        "--ice-listen-ips", "127.0.0.1", *args,
    )  # fmt: skip
    proc = Proc(cmd, tmp_path / f"{name}.log", env=sidecoach_env(**env))
    proc.port = port  # type: ignore[attr-defined]
    return proc


@pytest.mark.slow
def test_self_signed_serves_https_prints_fingerprint_and_redirects(tmp_path: Path) -> None:
    redirect_port = free_port()
    proc = serve(
        tmp_path, "self-signed", "--self-signed", "--demo",
        "--http-redirect-port", str(redirect_port),
    )  # fmt: skip
    with running(proc):
        port: int = proc.port  # type: ignore[attr-defined]
        proc.wait_output(r"Sidecoach is listening on https://127\.0\.0\.1:\d+")
        out = proc.output()
        assert "NOT for production" in out
        fingerprint = proc.wait_output(r"SHA-256 fingerprint ([0-9A-F:]{95})").group(1)
        # what the teacher's browser is offered is what the admin was shown
        assert served_fingerprint(port) == fingerprint
        # the printed invite links are https (printed once the demo is ready)
        proc.wait_output(rf"teacher  https://127\.0\.0\.1:{port}/join\?token=")
        proc.wait_output(r"Demo district: sign in at https://")
        assert "http://" not in proc.output()
        assert https_get(port, "/healthz") == (200, b'{"status": "ok"}')
        # plain HTTP is redirected to the same path on HTTPS
        conn = http.client.HTTPConnection("127.0.0.1", redirect_port, timeout=5)
        conn.request("GET", "/join?token=abc")
        resp = conn.getresponse()
        assert resp.status == 308
        assert resp.getheader("Location") == f"https://127.0.0.1:{port}/join?token=abc"
        conn.close()

    tls_dir = tmp_path / "data" / "tls"
    key_mode = (tls_dir / SELF_SIGNED_KEY).stat().st_mode & 0o777
    assert key_mode == 0o600
    cert = x509.load_pem_x509_certificate((tls_dir / SELF_SIGNED_CERT).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", socket.gethostname().lower()} <= set(san.get_values_for_type(x509.DNSName))
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert "NOT for production" in cert.subject.rfc4514_string()

    # a restart keeps the certificate the teachers already accepted; the same
    # files work as an admin-provided --tls-cert/--tls-key pair
    again = serve(
        tmp_path, "own-cert",
        "--tls-cert", str(tls_dir / SELF_SIGNED_CERT), "--tls-key", str(tls_dir / SELF_SIGNED_KEY),
    )  # fmt: skip
    with running(again):
        again.wait_output(r"Sidecoach is listening on https://")
        assert served_fingerprint(again.port) == fingerprint  # type: ignore[attr-defined]
        assert "NOT for production" not in again.output()
    restarted = serve(tmp_path, "restart", "--self-signed")
    with running(restarted):
        assert restarted.wait_output(r"SHA-256 fingerprint ([0-9A-F:]{95})").group(1) == fingerprint


def test_self_signed_certificate_is_kept_and_renewed_when_names_change(tmp_path: Path) -> None:
    names = CertificateNames(("localhost", "school-box"), (ipaddress.ip_address("10.1.2.3"),))
    cert_path, key_path, made = ensure_self_signed(tmp_path, names)
    assert made
    first = cert_path.read_bytes()
    assert ensure_self_signed(tmp_path, names)[2] is False
    assert cert_path.read_bytes() == first
    # the box got a new LAN address: a certificate that covers it
    moved = CertificateNames(names.dns, (ipaddress.ip_address("10.1.2.4"),))
    assert ensure_self_signed(tmp_path, moved)[2] is True
    # and one about to expire is made anew
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=360)
    assert ensure_self_signed(tmp_path, moved, now=later)[2] is True
    assert key_path.stat().st_mode & 0o777 == 0o600


def test_certificate_names_cover_the_configured_hosts(tmp_path: Path) -> None:
    config = Config(
        host="192.0.2.10",
        public_url="https://coach.school.example",
        ice_announced_ip="198.51.100.7",
    )
    names = certificate_names(config, host_ips=False)
    assert {"localhost", "coach.school.example", socket.gethostname().lower()} <= set(names.dns)
    assert {ipaddress.ip_address(a) for a in ("127.0.0.1", "192.0.2.10", "198.51.100.7")} <= set(
        names.ips
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SIDECOACH_TLS_CERT": "/x.pem"}, "SIDECOACH_TLS_KEY"),
        ({"SIDECOACH_TLS_KEY": "/x.pem"}, "SIDECOACH_TLS_CERT"),
        ({"SIDECOACH_TLS_CERT": "/nope.pem", "SIDECOACH_TLS_KEY": "/nope.key"}, "no such file"),
        ({"SIDECOACH_HTTP_REDIRECT_PORT": "80"}, "SIDECOACH_HTTP_REDIRECT_PORT"),
        ({"SIDECOACH_HTTP_REDIRECT_PORT": "eighty"}, "is not a port number"),
        ({"SIDECOACH_SELF_SIGNED": "maybe"}, "SIDECOACH_SELF_SIGNED"),
        ({"SIDECOACH_ICE_TRANSPORT_POLICY": "udp"}, "SIDECOACH_ICE_TRANSPORT_POLICY"),
        ({"SIDECOACH_ICE_TRANSPORT_POLICY": "relay"}, "no TURN server"),
        ({"SIDECOACH_TURN_SECRET": "s" * 32}, "SIDECOACH_TURN_URLS"),
        (
            {"SIDECOACH_TURN_SECRET": "s" * 32, "SIDECOACH_TURN_URLS": "stun:x:3478"},
            "turn: or turns:",
        ),
        ({"SIDECOACH_PUBLIC_URL": "coach.school.example"}, "SIDECOACH_PUBLIC_URL"),
    ],
)
def test_bad_network_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        check_network_settings(config_from_env(env))


def test_cli_refuses_a_half_tls_setup_and_never_prints_the_turn_secret(tmp_path: Path) -> None:
    secret = "turn-secret-that-must-not-leak-" + "q" * 8
    proc = subprocess.run(
        sidecoach_cmd("serve", "--data-dir", str(tmp_path), "--tls-cert", "/etc/hostname"),
        env=sidecoach_env(SIDECOACH_TURN_SECRET=secret, SIDECOACH_TURN_URLS="turn:x:3478"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "configuration error" in proc.stderr
    assert "SIDECOACH_TLS_KEY (--tls-key)" in proc.stderr
    assert secret not in proc.stderr + proc.stdout
    assert secret not in repr(config_from_env({"SIDECOACH_TURN_SECRET": secret}))
