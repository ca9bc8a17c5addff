"""The network-namespace harness itself (testkit/netns.py): a link carries
packets, loss drops a share of them and only in the shaped direction, delay
holds them (and jitter reorders them) in the userspace box, a cut drops
all, and nothing outlives the lab."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testkit.netns import Netlab

ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9999))
print("listening", flush=True)
while True:
    data, addr = s.recvfrom(2048)
    s.sendto(data, addr)
"""


def echoed(target: str, count: int) -> list[int]:
    """Send ``count`` datagrams to the echo server (1 ms apart); the numbers
    that came back, in arrival order (waiting until 0.5 s pass without one)."""
    got: list[int] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        for i in range(count):
            s.sendto(str(i).encode(), (target, 9999))
            time.sleep(0.001)
            with contextlib.suppress(BlockingIOError):
                while True:
                    got.append(int(s.recv(64)))
        s.settimeout(0.5)
        with contextlib.suppress(TimeoutError):
            while True:
                got.append(int(s.recv(64)))
        return got


def echoes(target: str, count: int) -> int:
    return len(set(echoed(target, count)))


def round_trip_ms(target: str) -> float:
    """The median round trip of 9 datagrams, one at a time."""
    times = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        for i in range(9):
            t0 = time.monotonic()
            s.sendto(str(i).encode(), (target, 9999))
            while int(s.recv(64)) != i:
                pass
            times.append((time.monotonic() - t0) * 1000)
    return sorted(times)[4]


@pytest.mark.slow
def test_links_carry_packets_shaping_drops_them_and_teardown_is_complete(
    netlab: Netlab, tmp_path: Path
) -> None:
    school = netlab.namespace("school")
    link = netlab.link(None, school, subnet=7)
    echo = netlab.popen(school, [sys.executable, "-c", ECHO, link.b_ip], "echo")
    echo.wait_output("listening")
    assert echoes(link.b_ip, 50) == 50

    link.shape("up", loss_pct=5)  # the school's uplink: replies get lost
    got = echoes(link.b_ip, 400)
    assert 0 < got < 400
    assert link.dropped("up") >= 400 - got  # (IPv6 neighbour discovery may lose too)
    assert link.dropped("down") == 0

    link.shape("up", delay_ms=40)  # the box holds each reply 40 ms
    assert round_trip_ms(link.b_ip) >= 40
    link.shape("up", delay_ms=30, jitter_ms=30)  # 0-60 ms each: replies overtake each other
    got = echoed(link.b_ip, 100)
    assert sorted(got) == list(range(100))
    assert any(b < a for a, b in zip(got, got[1:], strict=False))
    assert link.delayed()["up"]["passed"] >= 100

    link.cut()
    assert echoes(link.b_ip, 5) == 0
    link.restore()
    assert echoes(link.b_ip, 20) == 20
    assert echoed(link.b_ip, 50) == list(range(50))  # in order again

    anchor = school.pid
    netlab.close()
    assert echo.proc.poll() is not None
    assert not os.path.exists(f"/proc/{anchor}") or _zombie(anchor)
    devices = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert link.a_dev not in devices


def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(") ")[1].startswith("Z")
