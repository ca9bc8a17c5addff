"""HTTPS on the LAN from the first start (`scripts/run` = `serve --demo`):
the server finds its LAN address, serves HTTPS on it with a certificate kept
in the data directory, plain HTTP on localhost, and prints links, QR codes a
tablet can scan and the fingerprint to compare. Run in namespaces the test
makes: a "school box" running Sidecoach and a "tablet" on its LAN."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest
import qrcode

from server.ops import lan
from testkit.netns import Netlab
from testkit.procs import sidecoach_cmd, sidecoach_env

FETCH = """
import hashlib, http.client, json, ssl, sys
scheme, host, port, path = sys.argv[1:5]
if scheme == "https":
    ctx = ssl._create_unverified_context()
    conn = http.client.HTTPSConnection(host, int(port), timeout=5, context=ctx)
else:
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
conn.request("GET", path)
der = conn.sock.getpeercert(binary_form=True) if scheme == "https" else b""
r = conn.getresponse()
print(json.dumps({"status": r.status, "body": r.read().decode(),
                  "sha256": hashlib.sha256(der).hexdigest()}))
"""


def fingerprint_hex(printed: str) -> str:
    return printed.replace(":", "").lower()


def qr_block(out: str, role: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if f"open the {role}'s page" in line) + 1
    block = []
    for line in lines[start:]:
        if not line.startswith("  ") or not set(line.strip()) <= set("█▀▄ "):
            break
        block.append(line[2:])
    return block


def modules(block: list[str]) -> list[list[bool]]:
    """The dark modules of a printed QR (light on dark: a full block is two
    light modules)."""
    top = {"█": False, "▀": False, "▄": True, " ": True}
    bottom = {"█": False, "▀": True, "▄": False, " ": True}
    rows: list[list[bool]] = []
    for line in block:
        rows.append([top[c] for c in line])
        rows.append([bottom[c] for c in line])
    return rows


def test_qr_codes_print_the_link_module_for_module() -> None:
    url = "https://198.18.7.1:8080/join?token=" + "abc" * 60
    printed = modules(lan.qr_lines(url))
    qr = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_L)
    qr.add_data(url)
    qr.make(fit=True)
    matrix = qr.get_matrix()
    assert printed[: len(matrix)] == matrix


def test_lan_addresses_prefer_the_default_route(tmp_path: Path) -> None:
    routes = tmp_path / "route"
    routes.write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "lo\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    )
    assert lan._default_route_interfaces(routes) == ["lo"]
    plan = lan.LanPlan(("10.1.2.3", "192.168.0.9"), 443)
    assert (plan.https_url, plan.local_url) == ("https://10.1.2.3", "http://localhost:443")


@pytest.mark.slow
def test_demo_serves_https_on_the_lan_and_http_on_localhost(
    netlab: Netlab, tmp_path: Path
) -> None:
    box, tablet = netlab.namespace("box"), netlab.namespace("tablet")
    link = netlab.link(box, tablet, subnet=41)
    port = 18443
    data = tmp_path / "data"
    started = time.monotonic()
    server = netlab.popen(
        box,
        sidecoach_cmd("serve", "--demo", "--port", str(port), "--data-dir", str(data)),
        "lan-server",
        env=sidecoach_env(),
    )
    server.wait_output(r"open the coach's page", timeout=60)
    server.wait_output(r"(?s)open the coach's page:\n(  [█▀▄ ]+\n){20}", timeout=10)
    to_links = time.monotonic() - started
    out = server.output()
    https = f"https://{link.a_ip}:{port}"
    assert f"Sidecoach is listening on {https}" in out
    assert f"http://localhost:{port} (this machine)" in out
    assert "https://localhost" not in out
    teacher = re.search(rf"teacher  ({re.escape(https)}/join\?token=\S+)", out)
    assert teacher, out
    assert re.search(rf"coach    {re.escape(https)}/join\?token=", out)
    printed_fp = re.search(r"SHA-256 fingerprint ([0-9A-F:]{95})", out)
    assert printed_fp, out
    # the tablet scans the teacher's QR code: it is the teacher's link
    assert qr_block(out, "teacher") == lan.qr_lines(teacher.group(1))

    # the tablet opens the LAN address over HTTPS and sees the printed certificate
    seen = tablet.run(sys.executable, "-c", FETCH, "https", link.a_ip, str(port), "/healthz")
    assert '"status": 200' in seen.stdout, seen.stderr
    assert fingerprint_hex(printed_fp.group(1)) in seen.stdout
    # the machine itself uses plain http://localhost (a secure context too)
    local = box.run(sys.executable, "-c", FETCH, "http", "127.0.0.1", str(port), "/healthz")
    assert '"status": 200' in local.stdout, local.stderr
    server.stop()
    print(f"serve --demo: links and QR codes printed {to_links:.1f} s after the start")

    # a restart keeps the certificate the tablets accepted
    again = netlab.popen(
        box,
        sidecoach_cmd("serve", "--lan", "--port", str(port), "--data-dir", str(data)),
        "lan-again",
        env=sidecoach_env(),
    )
    kept = again.wait_output(r"SHA-256 fingerprint ([0-9A-F:]{95})", timeout=60).group(1)
    assert kept == printed_fp.group(1)
    assert (data / "tls" / "self-signed-cert.pem").is_file()


@pytest.mark.slow
def test_self_signed_links_name_the_lan_address_not_localhost(
    netlab: Netlab, tmp_path: Path
) -> None:
    box, tablet = netlab.namespace("box"), netlab.namespace("tablet")
    link = netlab.link(box, tablet, subnet=42)
    server = netlab.popen(
        box,
        sidecoach_cmd("serve", "--self-signed", "--demo", "--port", "18444",
                      "--data-dir", str(tmp_path / "data")),
        "self-signed",
        env=sidecoach_env(),
    )  # fmt: skip
    server.wait_output(r"lobby ", timeout=60)
    out = server.output()
    assert f"teacher  https://{link.a_ip}:18444/join?token=" in out
    assert "https://localhost" not in out
