#!/usr/bin/env python3
"""SIGTERM under churn (issue 22): does a node always exit?

A deployment of two nodes on a real redis-server: node A stays up; node B
is started, clients churn around it (socket.io clients on websocket and on
long-polling joining and leaving lessons on B directly and through A's
links, long-pollers that open a socket and vanish, websockets opened and
dropped at once, a teacher publishing a camera into a recorded lesson),
and B gets SIGTERM at a random moment with ``--drain-deadline 0`` while the
churn goes on. Repeated ``--runs`` times; prints how many runs exited, how
many within the drain timeout (``DRAIN_TIMEOUT_S``), and the exit times. A
node still running ``--give-up`` s after SIGTERM is killed, counted as
hung, and its last log lines printed.

    .venv/bin/python scripts/bench_drain_churn.py [--runs 50] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import benchlib
import socketio
from benchlib import ROOT

sys.path.insert(0, str(ROOT))

from server.core.config import Limits  # noqa: E402
from testkit.multinode import RedisProc  # noqa: E402
from testkit.peers import Participant, PatternVideoTrack  # noqa: E402

SECRET = "bench-churn-secret-" + "c" * 40
DRAIN_TIMEOUT_S = Limits().drain_timeout_s


def node(name: str, redis_url: str, data_dir: Path, log: Path) -> benchlib.ServerProcess:
    port = benchlib.free_port()
    args = [*benchlib.sidecoach_serve_args(port, data_dir), "--log-level", "INFO"]
    cmd = [sys.executable, "-m", "server", *args, "--node-id", name, "--redis-url", redis_url,
           "--drain-deadline", "0"]  # fmt: skip
    env = benchlib.sidecoach_env(SECRET)
    env["SIDECOACH_LIMIT_NODE_BUSY_CPU_PCT"] = "10000"
    return benchlib.ServerProcess(name, cmd, env, log, f"http://127.0.0.1:{port}", stop_timeout=5)


class Churn:
    """Clients coming and going until ``stop`` is set; counts what they did."""

    def __init__(self, urls: list[str], sessions: list[str]) -> None:
        self.urls, self.sessions = urls, sessions
        self.stop = asyncio.Event()
        self.done: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.done[what] = self.done.get(what, 0) + 1

    async def forever(self, fn: Callable[[], Awaitable[None]], what: str) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(fn(), 5)
                self._count(what)
            await asyncio.sleep(random.uniform(0, 0.05))

    async def join_leave(self, transport: str) -> None:
        client = socketio.AsyncClient(reconnection=False)
        url, session = random.choice(self.urls), random.choice(self.sessions)
        try:
            await client.connect(url, transports=[transport], wait_timeout=3)
            token = benchlib.invite(SECRET, session, random.choice(["coach", "observer"]))
            reply = await client.call("join", {"token": token}, timeout=3)
            if reply.get("ok") and random.random() < 0.7:
                await client.call("leave", {}, timeout=3)
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()

    async def polling_vanishes(self) -> None:
        """Open a long-polling socket, CONNECT, and never come back."""
        base = random.choice(self.urls) + "/socket.io/?EIO=4&transport=polling"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
            async with http.get(base) as resp:
                sid = json.loads((await resp.text())[1:])["sid"]
            if random.random() < 0.7:
                async with http.post(f"{base}&sid={sid}", data=b"40"):
                    pass

    async def websocket_dropped(self) -> None:
        url = random.choice(self.urls).replace("http", "ws", 1)
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url + "/socket.io/?EIO=4&transport=websocket")
            if random.random() < 0.5:
                await ws.send_str("40")
            await ws.close()

    async def teacher(self, url: str, session: str) -> None:
        teacher = Participant(url, benchlib.invite(SECRET, session, "teacher"), decode=False)
        try:
            await teacher.join()
            await teacher.publish(PatternVideoTrack(), "camera")
            await self.stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(teacher.close(), 5)

    def tasks(self, teacher_url: str) -> list[Awaitable[None]]:
        return [
            self.forever(lambda: self.join_leave("websocket"), "websocket join/leave"),
            self.forever(lambda: self.join_leave("websocket"), "websocket join/leave"),
            self.forever(lambda: self.join_leave("polling"), "polling join/leave"),
            self.forever(self.polling_vanishes, "long-polls abandoned"),
            self.forever(self.websocket_dropped, "websockets dropped"),
            self.teacher(teacher_url, self.sessions[0]),
        ]


async def wait_exit(proc: Any, give_up: float) -> float | None:
    started = time.monotonic()
    while proc.poll() is None:
        if time.monotonic() - started > give_up:
            return None
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def one_run(i: int, a: benchlib.ServerProcess, redis: RedisProc, work: Path,
                  give_up: float, keep: Path | None) -> dict[str, Any]:  # fmt: skip
    b = node("b", redis.url, work / "data", work / f"b-{i}.log")
    await b.start()
    async with benchlib.admin_client(SECRET, 600, 10) as http:
        sessions = [await benchlib.create_session(http, b.url, f"L{i}-{n}", "T", n == 0)
                    for n in range(3)]  # fmt: skip
    churn = Churn([b.url, b.url, a.url], sessions)
    running = [asyncio.ensure_future(t) for t in churn.tasks(b.url)]
    await asyncio.sleep(random.uniform(0.8, 2.5))
    assert b.proc is not None
    b.proc.send_signal(signal.SIGTERM)
    took = await wait_exit(b.proc, give_up)
    churn.stop.set()
    await benchlib.close_all(running, timeout=15)
    code = b.proc.poll()
    tail = "" if took is not None else b.log_tail(2500)
    b.stop()  # kill -9 after the bound if it hung
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        (keep / f"b-{i}.log").write_bytes(b.log_path.read_bytes())
    return {"run": i, "exit_s": None if took is None else round(took, 2), "code": code,
            "churn": churn.done, "log_tail": tail}  # fmt: skip


async def run(runs: int, give_up: float, keep: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-churn-") as tmp:
        work = Path(tmp)
        redis = RedisProc(work / "redis")
        a = node("a", redis.url, work / "data", work / "a.log")
        results = []
        try:
            await a.start()
            for i in range(runs):
                result = await one_run(i, a, redis, work, give_up, keep)
                results.append(result)
                print(f"run {i + 1}/{runs}: exit {result['exit_s']} s, code {result['code']}",
                      flush=True)  # fmt: skip
                if result["log_tail"]:
                    print(result["log_tail"], flush=True)
        finally:
            a.stop()
            redis.stop()
    times = [r["exit_s"] for r in results if r["exit_s"] is not None]
    return {
        "runs": runs,
        "exited": len(times),
        "exited_within_drain_timeout": sum(t <= DRAIN_TIMEOUT_S for t in times),
        "exited_cleanly": sum(r["code"] == 0 for r in results),
        "drain_timeout_s": DRAIN_TIMEOUT_S,
        "exit_s_p50": benchlib.percentile(times, 50, 2),
        "exit_s_max": max(times) if times else None,
        "results": results,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--give-up", type=float, default=DRAIN_TIMEOUT_S + 15)
    parser.add_argument("--keep-logs", metavar="DIR", help="keep node B's log of each run here")
    benchlib.add_quick_and_json_args(parser, "3 runs")
    benchlib.add_cache_and_verbose_args(parser, "unused (the runs need no media files)")
    args = parser.parse_args()
    benchlib.configure_logging(args.verbose)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # clients cut off mid-connect
    keep = Path(args.keep_logs) if args.keep_logs else None
    report = asyncio.run(run(3 if args.quick else args.runs, args.give_up, keep))
    r = report
    print(f"SIGTERM under churn: {r['exited']}/{r['runs']} exited,"
          f" {r['exited_within_drain_timeout']} within the drain timeout"
          f" ({r['drain_timeout_s']:.0f} s), {r['exited_cleanly']} with code 0;"
          f" exit after SIGTERM p50 {r['exit_s_p50']} s, max {r['exit_s_max']} s")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
