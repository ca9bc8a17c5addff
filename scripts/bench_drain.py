#!/usr/bin/env python3
"""How long a SIGTERM'd server takes to drain: refuse joins, tell every live
session, finalize every recording, exit.

For each N (1 is the baseline, in the same invocation): a fresh server, N
recorded sessions each with a teacher sending pre-encoded ~1 Mbit/s VP8 +
Opus and a coach that does not decode; after ``--seconds`` of lesson, SIGTERM.
Reports the server's own drain time (its log line), the time to exit, and
that every recording was finalized (not left for recovery), with the ratio
of N to the baseline.

    .venv/bin/python scripts/bench_drain.py [--sessions 10] [--seconds 20] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib
from benchlib import ROOT

sys.path.insert(0, str(ROOT))

from server.recording.manifest import read_manifest  # noqa: E402
from testkit.peers import Participant  # noqa: E402

SECRET = "bench-drain-secret-" + "d" * 40
DRAINED = re.compile(r"drained (\d+) live sessions in ([0-9.]+) s")


async def one_run(n: int, seconds: float, media: tuple[list[bytes], list[bytes]]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        data = Path(tmp)
        server = benchlib.sidecoach_server(data, data / "server.log", SECRET)
        server.cmd += ["--log-level", "INFO"]
        people: list[Participant] = []
        await server.start()
        try:
            async with benchlib.admin_client(SECRET, 600, 30) as http:
                for i in range(n):
                    sid = await benchlib.create_session(http, server.url, f"L{i}", "T", True)
                    teacher, coach = (
                        Participant(server.url, benchlib.invite(SECRET, sid, role), decode=False)
                        for role in ("teacher", "coach")
                    )
                    people += [teacher, coach]
                    await teacher.join()
                    await teacher.publish(benchlib.VideoClipTrack(media[0]), "camera")
                    await teacher.publish(benchlib.OpusClipTrack(media[1], start=0), "mic")
                    await coach.join()
            await benchlib.wait_until(
                lambda: all(len(p.received) == 2 for p in people[1::2]), 60, "coaches subscribed"
            )
            await asyncio.sleep(seconds)
            assert server.proc is not None
            proc = server.proc
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.get_running_loop().run_in_executor(None, proc.wait, 120)
            exit_s = time.monotonic() - t0
        finally:
            await benchlib.close_all(p.close() for p in people)
            server.stop()
        match = DRAINED.search(server.log_tail(200_000))
        found = (data / "recordings").glob("*/*/manifest.json")
        manifests = [read_manifest(m.parent) for m in found]
        return {
            "sessions": n,
            "exit_code": code,
            "drain_s": float(match.group(2)) if match else None,
            "exit_s": round(exit_s, 3),
            "recordings": len(manifests),
            "finalized": sum(m.get("state") == "finalized" for m in manifests),
            "recorded_mb": round(sum(m.get("bytes", 0) for m in manifests) / 1e6, 1),
        }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    cache = Path(args.cache_dir)
    media = (
        benchlib.load_video_clip(benchlib.make_video_clip(cache, 10)),
        benchlib.load_opus_clip(benchlib.make_opus_clip(cache)),
    )
    seconds = 3.0 if args.quick else args.seconds
    sizes = [1, 2] if args.quick else [1, args.sessions]
    runs = [await one_run(n, seconds, media) for n in sizes]
    return {"seconds_recorded": seconds, "runs": runs, "machine": benchlib.machine_info()}


def render(report: dict[str, Any]) -> str:
    runs = report["runs"]
    base = runs[0]
    lines = [
        f"SIGTERM drain after {report['seconds_recorded']:.0f} s of recorded lesson per session",
        f"{'sessions':>8} {'drain s':>8} {'exit s':>7} {'finalized':>10} {'MB':>6}"
        f" {'x baseline':>11}",
    ]
    for r in runs:
        ratio = r["exit_s"] / base["exit_s"] if base["exit_s"] else None
        lines.append(
            f"{r['sessions']:>8} {benchlib.fmt(r['drain_s'], '.2f'):>8} {r['exit_s']:>7.2f}"
            f" {r['finalized']:>4}/{r['recordings']:<5} {r['recorded_mb']:>6.1f}"
            f" {benchlib.fmt(ratio, '.2f'):>11}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    benchlib.add_quick_and_json_args(parser, "2 sessions, 3 s: a smoke run")
    benchlib.add_cache_and_verbose_args(parser, "where the pre-encoded clips are kept")
    args = parser.parse_args()
    benchlib.configure_logging(args.verbose)
    report = benchlib.run_and_report(args, bench, render)
    if any(r["finalized"] != r["recordings"] or r["exit_code"] != 0 for r in report["runs"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
