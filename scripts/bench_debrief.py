#!/usr/bin/env python3
"""Drift between the members of a debrief room following one driver.

Records a short real lesson (pre-encoded VP8 + Opus teacher), starts a
debrief with three members in headless Chromium (each also sending its fake
camera and mic, as in a real debrief), then the driver plays, seeks, changes
the rate and pauses for ``--seconds``. Every 100 ms each member reports its
drift (its player's position minus where the room is now, on the server
clock it synced to). Reports |drift| per member and the spread between
members (max - min at one instant), p50/p95/max, over all samples and over
the settled ones (>= 1 s after a command), for Sidecoach's sync (rate nudges,
seek on large drift) against a naive baseline (apply each command once) in
the same invocation.

    .venv/bin/python scripts/bench_debrief.py [--seconds 60] [--json PATH] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import benchlib
from benchlib import ROOT

sys.path.insert(0, str(ROOT))

from testkit.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from testkit.peers import Participant  # noqa: E402

SECRET = "bench-debrief-secret-" + "d" * 40
MEMBERS = ("Driver", "Ana", "Ben")
SAMPLE_S = 0.1
args_debug = False
#: how long a page may take to get somewhere (a loaded machine is slow, not broken)
WAIT_MS = 120_000
SETTLE_S = 1.0
RATES = (0.75, 1.0, 1.25, 1.5)


async def record_lesson(server: Any, seconds: float, media: tuple[list[bytes], list[bytes]]) -> str:
    """A real recorded lesson of ``seconds``; returns the teacher's invite."""
    async with benchlib.admin_client(SECRET, 600, 30) as http:
        sid = await benchlib.create_session(http, server.url, "Bench lesson", "T", True)
        teacher = Participant(server.url, benchlib.invite(SECRET, sid, "teacher"), decode=False)
        try:
            await teacher.join()
            await teacher.publish(benchlib.VideoClipTrack(media[0]), "camera")
            await teacher.publish(benchlib.OpusClipTrack(media[1], start=0), "mic")
            await asyncio.sleep(seconds)
        finally:
            await teacher.close()
        async with http.post(f"{server.url}/api/sessions/{sid}/end") as r:
            assert r.status == 200, await r.text()
    return benchlib.invite(SECRET, sid, "teacher")


async def start_debrief(url: str, teacher: str) -> tuple[str, list[str], tuple[float, float]]:
    headers = {"Authorization": f"Bearer {teacher}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for _ in range(100):  # the recording is finalized just after the end
            async with http.get(f"{url}/api/recordings") as r:
                recs = (await r.json())["recordings"]
            if recs and recs[0]["state"] == "finalized":
                break
            await asyncio.sleep(0.1)
        rid = recs[0]["id"]
        async with http.get(f"{url}/api/recordings/{rid}") as r:
            view = (await r.json())["view"]
        body = {"members": list(MEMBERS[1:])}
        async with http.post(f"{url}/api/recordings/{rid}/debriefs", json=body) as r:
            made = await r.json()
    links = [made["owner"]["url"], *(m["url"] for m in made["members"])]
    paths = ["/join?" + link.split("?", 1)[1] for link in links]
    return rid, paths, (view["start_ms"] / 1000, view["end_ms"] / 1000)


async def run_mode(
    mode: str, browser: Any, url: str, paths: list[str], span: tuple[float, float],
    seconds: float, seed: int,
) -> dict[str, Any]:  # fmt: skip
    contexts, pages = [], []
    for path in paths:
        ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
        if mode == "naive":
            await ctx.add_init_script("globalThis.SIDECOACH_SYNC = 'naive';")
        page = await ctx.new_page()
        await page.goto(url + path)
        await page.wait_for_function(
            "() => document.querySelector('#join') && !document.querySelector('#join').disabled",
            timeout=WAIT_MS,
        )
        await page.click("#join")
        await page.wait_for_function("() => window.sidecoach && sidecoach.joined", timeout=WAIT_MS)
        contexts.append(ctx)
        pages.append(page)
    try:
        for page in pages:
            await page.wait_for_function(
                "() => document.querySelector('#player').readyState >= 2", timeout=WAIT_MS
            )
        driver = pages[0]
        await driver.evaluate("() => document.querySelector('#take-wheel').click()")
        await driver.wait_for_function(
            "() => sidecoach.driver === sidecoach.participantId", timeout=WAIT_MS
        )
        rng = random.Random(seed)
        lo, hi = span[0] + 0.5, span[1] - 4.0
        samples: list[dict[str, Any]] = []
        commands = 0
        last_command = time.monotonic()
        stop_at = time.monotonic() + seconds
        next_command = time.monotonic()
        playing = False

        async def command(action: str, **kw: Any) -> None:
            nonlocal last_command, commands
            await driver.evaluate(
                "async ([action, kw]) => { const msg = {action, ...kw};"
                " if (msg.position === undefined)"
                "   msg.position = document.querySelector('#player').currentTime;"
                " await sidecoach.socket.emitWithAck('playback', msg); }",
                [action, kw],
            )
            last_command = time.monotonic()
            commands += 1

        await command("play", position=lo)
        playing = True
        while time.monotonic() < stop_at:
            now = time.monotonic()
            if now >= next_command:
                pos = await driver.evaluate("() => document.querySelector('#player').currentTime")
                choice = rng.random()
                if pos > hi or choice < 0.35:
                    await command("seek", position=round(rng.uniform(lo, hi), 3))
                elif choice < 0.55:
                    await command("rate", rate=rng.choice(RATES))
                elif choice < 0.75 and playing:
                    await command("pause")
                    playing = False
                else:
                    await command("play")
                    playing = True
                next_command = now + rng.uniform(2.5, 5.0)
            drifts = await asyncio.gather(
                *(
                    p.evaluate(
                        "() => [sidecoach.drift, sidecoach.playback && sidecoach.playback.moving,"
                        " sidecoach.playback && sidecoach.playback.waitingFor.join(),"
                        " sidecoach.playback && sidecoach.playback.playing, sidecoach.paused]"
                    )
                    for p in pages
                )
            )
            if args_debug:
                print(mode, round(time.monotonic() - stop_at, 1), drifts, flush=True)
            values = [d[0] for d in drifts if d[0] is not None]
            if len(values) == len(pages):
                samples.append({
                    "since_command": time.monotonic() - last_command,
                    "moving": all(d[1] for d in drifts),
                    "drifts": values,
                })  # fmt: skip
            await asyncio.sleep(SAMPLE_S)
        rtts = [await p.evaluate("() => sidecoach.clockRtt") for p in pages]
        seeks = [await p.evaluate("() => sidecoach.seeks") for p in pages]
    finally:
        for ctx in contexts:
            await ctx.close()

    def stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
        member = [abs(d) * 1000 for r in rows for d in r["drifts"]]
        spread = [(max(r["drifts"]) - min(r["drifts"])) * 1000 for r in rows]
        return {
            "samples": len(rows),
            "member_p50_ms": benchlib.percentile(member, 50, 1),
            "member_p95_ms": benchlib.percentile(member, 95, 1),
            "member_max_ms": round(max(member), 1) if member else None,
            "spread_p50_ms": benchlib.percentile(spread, 50, 1),
            "spread_p95_ms": benchlib.percentile(spread, 95, 1),
            "spread_max_ms": round(max(spread), 1) if spread else None,
        }

    moving = [r for r in samples if r["moving"]]
    return {
        "mode": mode,
        "commands": commands,
        "all": stats(moving),
        "settled": stats([r for r in moving if r["since_command"] >= SETTLE_S]),
        "clock_rtt_ms": [round(r, 2) if r is not None else None for r in rtts],
        "correcting_seeks": seeks,
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    seconds = 6.0 if args.quick else args.seconds
    lesson_s = 8.0 if args.quick else 25.0
    cache = Path(args.cache_dir)
    media = (
        benchlib.load_video_clip(benchlib.make_video_clip(cache, 10)),
        benchlib.load_opus_clip(benchlib.make_opus_clip(cache)),
    )
    with tempfile.TemporaryDirectory(prefix="bench-debrief-") as tmp:
        data = Path(tmp)
        server = benchlib.sidecoach_server(data, data / "server.log", SECRET)
        await server.start()
        try:
            teacher = await record_lesson(server, lesson_s, media)
            rid, paths, span = await start_debrief(server.url, teacher)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
                )
                try:
                    runs = []
                    for mode in ("naive", "sidecoach"):
                        runs.append(
                            await run_mode(
                                mode, browser, server.url, paths, span, seconds, args.seed
                            )
                        )
                finally:
                    await browser.close()
        finally:
            server.stop()
    return {
        "seconds": seconds,
        "members": len(MEMBERS),
        "runs": runs,
        "machine": benchlib.machine_info(),
    }


def render(report: dict[str, Any]) -> str:
    f = benchlib.fmt
    lines = [
        f"Debrief sync: {report['members']} Chromium members,"
        f" {report['seconds']:.0f} s of driver actions",
        f"{'mode':<10} {'cmds':>4} {'set':<8} {'n':>5} {'|drift| p50/p95/max ms':>24}"
        f" {'spread p50/p95/max ms':>24}",
    ]
    for run in report["runs"]:
        for which in ("all", "settled"):
            s = run[which]
            lines.append(
                f"{run['mode']:<10} {run['commands']:>4} {which:<8} {s['samples']:>5}"
                f" {f(s['member_p50_ms']):>8}/{f(s['member_p95_ms'])}/{f(s['member_max_ms']):<8}"
                f" {f(s['spread_p50_ms']):>8}/{f(s['spread_p95_ms'])}/{f(s['spread_max_ms'])}"
            )
    naive, ours = report["runs"]
    for which in ("all", "settled"):
        a, b = naive[which]["spread_p95_ms"], ours[which]["spread_p95_ms"]
        if a and b:
            lines.append(f"spread p95 ({which}): Sidecoach / naive = {b / a:.2f}")
    lines.append(
        f"clock sync rtt ms: {ours['clock_rtt_ms']}; correcting seeks: {ours['correcting_seeks']}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=7)
    benchlib.add_quick_and_json_args(parser, "6 s of actions: a smoke run")
    benchlib.add_cache_and_verbose_args(parser, "where the pre-encoded clips are kept")
    args = parser.parse_args()
    benchlib.configure_logging(args.verbose)
    benchlib.run_and_report(args, bench, render)


if __name__ == "__main__":
    main()
