#!/usr/bin/env python3
"""Clients that ignore the close (issue 22): N token-less websockets from
one address, each sending ``40/nope,`` (an unknown namespace: the server
closes it) and then ignoring Engine.IO's CLOSE and the WebSocket close frame
(testkit/stubborn.py: a raw socket that never closes its end).

Against a real server process with the default limits, prints: the
server's open file descriptors and admitted token-less sockets before, at
the peak (sampled from /metrics while the clients connect) and after; how
many clients were admitted (101) or refused (401); how many the server cut
(closed their TCP connection) and how long that took.

    .venv/bin/python scripts/bench_closed_sockets.py [--clients 60] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import benchlib
from benchlib import ROOT

sys.path.insert(0, str(ROOT))

from testkit.stubborn import StubbornSocket  # noqa: E402

SECRET = "bench-closed-secret-" + "c" * 40
GAUGES = ("sidecoach_signaling_sockets_unauthenticated", "sidecoach_signaling_websockets")


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def gauges(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(url + "/metrics") as resp:
        text = await resp.text()
    found = {}
    for name in GAUGES:
        match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
        found[name.rsplit("_", 1)[-1]] = float(match.group(1)) if match else -1.0
    return found


class Attack:
    """The clients, one after another as in issue 22: each opens, sends
    ``40/nope,``, and the next opens as soon as the server answered (CLOSE)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sockets: list[StubbornSocket] = []
        self.cut_s: list[float] = []
        self.statuses: list[int] = []
        #: the most admitted clients whose connection was open at one time
        self.peak_open = 0

    async def one(self, started: float) -> None:
        s = StubbornSocket(self.host, self.port)
        self.statuses.append(await s.open())
        if s.status != 101:
            return
        self.sockets.append(s)
        await s.send("40/nope,")
        deadline = time.monotonic() + 10
        while "1" not in s.frames and not s.cut.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        open_now = sum(not x.cut.is_set() for x in self.sockets)
        self.peak_open = max(self.peak_open, open_now)
        asyncio.ensure_future(self._cut(s, started))

    async def _cut(self, s: StubbornSocket, started: float) -> None:
        if await s.wait_cut(timeout=60):
            self.cut_s.append(round(time.monotonic() - started, 3))


async def run(clients: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-closed-") as tmp:
        server = benchlib.sidecoach_server(Path(tmp), Path(tmp) / "server.log", SECRET)
        await server.start()
        host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
        try:
            async with aiohttp.ClientSession() as http:
                await asyncio.sleep(1.0)  # the server settles (lazy imports, first requests)
                before = {"fds": fds(server.pid), **await gauges(http, server.url)}
                peak = dict(before)
                started = time.monotonic()
                attack = Attack(host, port)

                async def clients_one_by_one() -> None:
                    for _ in range(clients):
                        await attack.one(started)

                running = asyncio.ensure_future(clients_one_by_one())
                while not running.done():
                    g = await gauges(http, server.url)
                    peak = {k: max(peak[k], v) for k, v in {"fds": fds(server.pid), **g}.items()}
                    await asyncio.sleep(0.05)
                await running
                last = time.monotonic()
                while time.monotonic() - last < 30:  # until nothing is counted (bounded)
                    g = await gauges(http, server.url)
                    if g["unauthenticated"] == g["websockets"] == 0:
                        break
                    await asyncio.sleep(0.05)
                settled_s = round(time.monotonic() - last, 3)
                after = {"fds": fds(server.pid), **await gauges(http, server.url)}
                await asyncio.sleep(0.2)  # our ends read the server's close
                cut = list(attack.cut_s)
                for sock in attack.sockets:
                    await sock.abandon()
        finally:
            server.stop()
    return {
        "clients": clients,
        "admitted": attack.statuses.count(101),
        "refused": attack.statuses.count(401),
        "peak_open_admitted": attack.peak_open,
        "cut_by_server": len(cut),
        "settled_s_after_last_client": settled_s,
        "last_cut_s": max(cut) if cut else None,
        "before": before,
        "peak": peak,
        "after": after,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=60)
    benchlib.add_quick_and_json_args(parser, "20 clients")
    benchlib.add_cache_and_verbose_args(parser, "unused")
    args = parser.parse_args()
    report = asyncio.run(run(20 if args.quick else args.clients))
    b, p, a = report["before"], report["peak"], report["after"]
    print(f"{report['clients']} clients ignoring the close, each sending 40/nope,")
    print(f"  admitted {report['admitted']}, refused (401) {report['refused']};"
          f" at most {report['peak_open_admitted']} admitted open at once")  # fmt: skip
    print(f"  cut by the server: {report['cut_by_server']} (the last {report['last_cut_s']} s"
          f" after the first client); nothing counted"
          f" {report['settled_s_after_last_client']} s after the last client")  # fmt: skip
    print("                 before  peak  after")
    print(f"  open fds       {b['fds']:6.0f} {p['fds']:5.0f} {a['fds']:6.0f}")
    print(f"  token-less     {b['unauthenticated']:6.0f} {p['unauthenticated']:5.0f}"
          f" {a['unauthenticated']:6.0f}")  # fmt: skip
    print(f"  websockets     {b['websockets']:6.0f} {p['websockets']:5.0f} {a['websockets']:6.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
