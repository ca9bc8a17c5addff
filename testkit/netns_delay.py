"""Delay and jitter for a lab link without ``tc netem``: a small userspace
box inside the participant's namespace that holds every IPv4 packet of the
link for ``delay ± jitter`` ms before passing it on (testkit/netns.py uses it
when the kernel has no ``sch_netem``, as this CI's has not).

How packets reach it, in namespace ``b`` of a Link (``b_dev`` its veth end):

* **up** (b -> a, e.g. the teacher's uplink): a policy rule sends every
  locally generated IPv4 packet to the TUN device ``scdu`` (``ip rule add
  iif lo lookup 100``; table 100: ``default dev scdu``). The box reads it
  from the TUN, waits, and writes it unchanged onto ``b_dev`` with an
  ``AF_PACKET`` socket addressed to the other end's MAC: the packet leaves
  by the same device, qdisc (``tbf``) and nftables egress hook (loss) as
  without the box.
* **down** (a -> b): a ``tc`` ingress filter on ``b_dev`` redirects every
  IPv4 packet to the TUN device ``scdd`` (``mirred egress redirect``); the
  box reads it, waits, and writes it back into ``scdd``, where the kernel
  receives it and delivers it locally (reverse-path filtering is off).

Each packet waits ``delay + uniform(-jitter, +jitter)`` ms (never less than
0), drawn independently as netem does, so a jitter larger than the gap
between two packets reorders them, as on a real path with several queues.
The queue is bounded (``MAX_QUEUED`` packets per direction; beyond it
packets are dropped and counted). ARP and IPv6 are not delayed. The box is
driven by lines on stdin (``up DELAY JITTER``, ``down DELAY JITTER``,
``stats``) and answers with JSON lines.

    python -m testkit.netns_delay --dev B_DEV --peer-mac 02:..  (inside namespace b)
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import heapq
import json
import os
import random
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
ETH_P_IP = 0x0800
#: packets held per direction at most; more are dropped (a bounded queue)
MAX_QUEUED = 4000
UP_TUN, DOWN_TUN = "scdu", "scdd"
ROUTE_TABLE = "100"


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def sh(*args: str) -> None:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=10)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {proc.stderr.strip()}")


@dataclass
class Direction:
    name: str
    write: Callable[[bytes], None]
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    queued: int = 0
    passed: int = 0
    dropped: int = 0

    def hold_s(self) -> float:
        d = self.delay_ms
        if self.jitter_ms:
            d += random.uniform(-self.jitter_ms, self.jitter_ms)
        return max(0.0, d) / 1000


class DelayBox:
    def __init__(self, dev: str, peer_mac: str) -> None:
        self.dev = dev
        self._mac = bytes.fromhex(peer_mac.replace(":", ""))
        self._up_fd = open_tun(UP_TUN)
        self._down_fd = open_tun(DOWN_TUN)
        self._raw = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        self._raw.bind((dev, ETH_P_IP))
        self.up = Direction("up", self._send_up)
        self.down = Direction("down", lambda data: os.write(self._down_fd, data) and None)
        self._heap: list[tuple[float, int, Direction, bytes]] = []
        self._n = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._loop = asyncio.get_running_loop()

    def _send_up(self, data: bytes) -> None:
        self._raw.sendto(data, (self.dev, ETH_P_IP, 0, 0, self._mac))

    def route_through(self) -> None:
        """Send the link's IPv4 traffic through this box (both directions)."""
        for tun in (UP_TUN, DOWN_TUN):
            sh("ip", "link", "set", tun, "up")
        sh("ip", "route", "replace", "default", "dev", UP_TUN, "table", ROUTE_TABLE)
        sh("ip", "rule", "add", "pref", "100", "iif", "lo", "lookup", ROUTE_TABLE)
        for conf in ("all", "default", DOWN_TUN):
            sh("sysctl", "-qw", f"net.ipv4.conf.{conf}.rp_filter=0")
        sh("tc", "qdisc", "add", "dev", self.dev, "ingress")
        sh("tc", "filter", "add", "dev", self.dev, "parent", "ffff:", "protocol", "ip",
           "prio", "1", "u32", "match", "u32", "0", "0",
           "action", "mirred", "egress", "redirect", "dev", DOWN_TUN)  # fmt: skip
        self._loop.add_reader(self._up_fd, self._readable, self._up_fd, self.up)
        self._loop.add_reader(self._down_fd, self._readable, self._down_fd, self.down)

    def _readable(self, fd: int, direction: Direction) -> None:
        now = time.monotonic()
        while True:
            try:
                data = os.read(fd, 65535)
            except BlockingIOError:
                break
            if direction.queued >= MAX_QUEUED:
                direction.dropped += 1
                continue
            hold = direction.hold_s()
            if hold == 0 and not direction.queued:
                self._release(direction, data)
                continue
            self._n += 1
            direction.queued += 1
            heapq.heappush(self._heap, (now + hold, self._n, direction, data))
        self._arm()

    def _arm(self) -> None:
        if not self._heap:
            return
        at = self._heap[0][0]
        if self._timer is not None and self._timer_at <= at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_at(self._loop.time() + (at - time.monotonic()), self._due)

    def _due(self) -> None:
        self._timer = None
        now = time.monotonic()
        while self._heap and self._heap[0][0] <= now + 0.0005:
            _, _, direction, data = heapq.heappop(self._heap)
            direction.queued -= 1
            self._release(direction, data)
        self._arm()

    def _release(self, direction: Direction, data: bytes) -> None:
        try:
            direction.write(data)
            direction.passed += 1
        except OSError:
            direction.dropped += 1

    def stats(self) -> dict[str, dict[str, float]]:
        return {
            d.name: {"delay_ms": d.delay_ms, "jitter_ms": d.jitter_ms, "passed": d.passed,
                     "dropped": d.dropped, "queued": d.queued}
            for d in (self.up, self.down)
        }  # fmt: skip


def _say(**data: object) -> None:
    print(json.dumps(data), flush=True)


async def _run(args: argparse.Namespace) -> int:
    box = DelayBox(args.dev, args.peer_mac)
    box.route_through()
    _say(event="ready")
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line or line[0] == "quit":
            return 0
        if line[0] in ("up", "down") and len(line) == 3:
            direction = box.up if line[0] == "up" else box.down
            direction.delay_ms, direction.jitter_ms = float(line[1]), float(line[2])
            _say(event="set", direction=line[0], delay_ms=direction.delay_ms,
                 jitter_ms=direction.jitter_ms)  # fmt: skip
        elif line[0] == "stats":
            _say(event="stats", **box.stats())
        else:
            _say(event="error", message=f"unknown command {' '.join(line)!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev", required=True, help="this namespace's end of the link")
    parser.add_argument("--peer-mac", required=True, help="MAC of the link's other end")
    return asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
