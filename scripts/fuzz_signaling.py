"""Hostile-client soak of the signaling edge: 100,000+ messages against a
Sidecoach server in its own process, while a legitimate coach watches a
legitimate teacher.

Workers (raw websocket clients, ``testkit/rawsio.py``) loop over attack
rounds, each on a fresh socket: reserved events (``connect``,
``disconnect``, ``connect_error``) between joins, message floods,
near-schema and random payloads for every event, binary attachments (1 MB
frames after a binary event header), malformed Engine.IO/Socket.IO frames,
forged/expired/tampered tokens, role escalation (an observer publishing,
cueing, pausing the recording; a coach publishing a camera) and crowds of
token-less sockets. Every message is sent with an acknowledgement and must
get a reply or a close.

Reported: replies by code (``closed`` = the server closed the socket),
messages with neither (must be 0), sockets refused by a limit, tracebacks
in the server log (must be 0), the server's RSS before and after, the
latency of ``GET /healthz`` during the run (p50/p99), and the frames per
second the legitimate coach decoded before, during and after the run.

Usage::

    .venv/bin/python scripts/fuzz_signaling.py [--quick] [--json out.json] [--messages N]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent)]  # benchlib; the server package

import aiohttp  # noqa: E402
import benchlib  # noqa: E402
from benchlib import BENCH_SECRET, fmt  # noqa: E402

from testkit.peers import Participant, PatternVideoTrack  # noqa: E402
from testkit.rawsio import CLOSED, RawSocket  # noqa: E402

EVENTS = [
    "join", "publish", "unpublish", "answer", "leave", "whisper-start", "whisper-stop", "cue",
    "cue-ack", "tally", "tally-undo", "note", "recording-pause", "recording-resume",
]  # fmt: skip
RESERVED = ["connect", "disconnect", "connect_error"]
FIELDS = [
    "token", "name", "sessionId", "source", "kind", "codec", "producerId", "negotiationId",
    "sdp", "text", "promptIndex", "icon", "color", "tone", "cueId", "category", "extra",
]  # fmt: skip
MALFORMED = [
    "42" + "[" * 3000 + "]" * 3000, '42["note", ' + "9" * 5000 + "]", '42["note", {',
    "4" + "[" * 500, "x", "40", "49", "6", "2", "3probe", "", "41extra", "4{}", "42/nope,[]",
    "4999999999999-[]", '452-["a",{"_placeholder":true,"num":0}]', "b" + "A" * 64,
]  # fmt: skip
MB = b"\x00" * 1_000_000


def random_value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(9 if depth < 3 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.choice([0, -1, 1, 63, 64, 2**31, 2**63, -(2**70)])
    if pick == 3:
        return rng.random() * 1e6
    if pick == 4:
        return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(0, 40)))
    if pick == 5:
        return rng.choice(["camera", "mic", "screen", "whisper", "video", "audio", "#ff00ff", ""])
    if pick in (6, 7):
        return {rng.choice(FIELDS): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}
    return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


class Attack:
    """One worker's view of the run: the invites and the shared tallies."""

    def __init__(self, url: str, http: aiohttp.ClientSession, invites: dict[str, str]) -> None:
        self.url = url
        self.http = http
        self.invites = invites
        self.codes: collections.Counter[str] = collections.Counter()
        self.sent = 0
        self.no_reply = 0
        self.sockets_refused = 0

    async def socket(self, join_as: str | None = None) -> RawSocket | None:
        s = RawSocket(self.url, self.http)
        if await s.open() != 101:
            self.sockets_refused += 1
            return None
        if join_as is not None:
            await self.calls(s, [["join", {"token": self.invites[join_as]}]])
        return s

    async def calls(self, s: RawSocket, messages: list[list[Any]]) -> list[Any]:
        """Send every message with an ack (pipelined), then collect replies."""
        ids = []
        for message in messages:
            ack_id = s.new_id()
            ids.append(ack_id)
            await s.send(s.emit_frame(message, ack_id))
        replies = []
        for ack_id in ids:
            try:
                reply = await s.reply(ack_id, timeout=10)
            except AssertionError:
                self.no_reply += 1
                reply = None
            self.tally(reply)
            replies.append(reply)
        return replies

    async def frame(self, s: RawSocket, frame: str | bytes) -> None:
        """A frame that is not a message: it must close the socket (or, for
        the harmless ones, leave it answering)."""
        await s.send(frame)
        reply = await s.call("no-such-event", {}) if not s.closed else CLOSED
        self.tally(reply)

    def tally(self, reply: Any) -> None:
        self.sent += 1
        if reply is None:
            return
        if reply == CLOSED:
            self.codes["closed"] += 1
        elif reply.get("ok"):
            self.codes["ok"] += 1
        else:
            self.codes[str(reply["error"]["code"])] += 1


async def round_of(kind: str, a: Attack, rng: random.Random) -> None:
    sockets: list[RawSocket] = []
    try:
        if kind == "reserved":
            s = await a.socket("observer")
            if s is None:
                return
            sockets.append(s)
            for _ in range(10):
                msgs = [[rng.choice(RESERVED), random_value(rng)] for _ in range(3)]
                await a.calls(s, [*msgs, ["join", {"token": a.invites["observer"]}]])
        elif kind == "flood":
            s = await a.socket("observer")
            if s is None:
                return
            sockets.append(s)
            await a.calls(s, [[rng.choice(EVENTS + ["x"]), {}] for _ in range(200)])
        elif kind == "schema":
            s = await a.socket(rng.choice(["observer", "coach"]))
            if s is None:
                return
            sockets.append(s)
            msgs = [[rng.choice(EVENTS), random_value(rng)] for _ in range(40)]
            msgs += [[rng.choice(EVENTS)] + [random_value(rng) for _ in range(2)] for _ in range(5)]
            await a.calls(s, msgs)
        elif kind == "attachments":
            s = await a.socket()
            if s is None:
                return
            sockets.append(s)
            await s.send('459-["join",' + ",".join(['{"_placeholder":true,"num":0}'] * 9) + "]")
            for _ in range(3):
                await s.send(MB)
            await a.frame(s, MB)
        elif kind == "malformed":
            s = await a.socket(rng.choice([None, "observer"]))
            if s is None:
                return
            sockets.append(s)
            await a.frame(s, rng.choice(MALFORMED))
        elif kind == "forged":
            s = await a.socket()
            if s is None:
                return
            sockets.append(s)
            good = a.invites["observer"]
            head, body, sig = good.split(".")
            forged = [
                benchlib.invite("another-secret-" + "z" * 40, "s-x", "teacher"),
                f"{head}.{body}.{sig[::-1]}",
                f"{head}.{body[:-4]}AAAA.{sig}",
                "eyJhbGciOiJub25lIn0." + body + ".",
                "not.a.jwt",
                "x" * 5000,
            ]
            await a.calls(s, [["join", {"token": t}] for t in forged])
        elif kind == "escalation":
            role = rng.choice(["observer", "coach"])
            s = await a.socket(role)
            if s is None:
                return
            sockets.append(s)
            await a.calls(s, [
                ["publish", {"source": "camera", "kind": "video"}],
                ["publish", {"source": "mic", "kind": "audio"}],
                ["recording-pause", {}],
                ["cue-ack", {"cueId": "c-1"}],
                ["cue", {"text": "go"}],
                ["whisper-start", {}],
                ["recording-resume", {}],
            ])  # fmt: skip
        elif kind == "crowd":
            for _ in range(25):
                s = await a.socket()
                if s is not None:
                    sockets.append(s)
            if sockets:
                await a.calls(sockets[0], [["tally", {"category": "x"}]])
    finally:
        for s in sockets:
            await s.close()


KINDS = {
    "schema": 6, "flood": 3, "reserved": 3, "forged": 2, "escalation": 2, "malformed": 3,
    "attachments": 1, "crowd": 1,
}  # fmt: skip


async def worker(a: Attack, seed: int, target: int) -> None:
    rng = random.Random(seed)
    kinds, weights = list(KINDS), list(KINDS.values())
    while a.sent < target:
        await round_of(rng.choices(kinds, weights)[0], a, rng)


async def probe_healthz(url: str, http: aiohttp.ClientSession, out: list[float]) -> None:
    while True:
        t0 = time.perf_counter()
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with http.get(f"{url}/healthz") as resp:
                await resp.read()
                if resp.status == 200:
                    out.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.1)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def fps_over(coach: Participant, seconds: float) -> float:
    video = coach.tracks(source="camera")[0]
    before, t0 = video.frames, time.monotonic()
    await asyncio.sleep(seconds)
    return (video.frames - before) / (time.monotonic() - t0)


def count_tracebacks(log: str) -> int:
    return log.count("Traceback (most recent call last)") + log.count("never retrieved")


def first_traceback(log: str, context_lines: int = 40) -> str:
    """The log from the first traceback's line on (a few lines), or ''."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "Traceback (most recent call last)" in line or "never retrieved" in line:
            return "\n".join(lines[max(0, i - 2) : i + context_lines])
    return ""


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": benchlib.machine_info(), "target_messages": args.messages}
    with tempfile.TemporaryDirectory(prefix="sidecoach-fuzz-") as tmp:
        server = benchlib.sidecoach_server(
            Path(tmp) / "data", Path(tmp) / "server.log", BENCH_SECRET
        )
        await server.start()
        teacher = coach = None
        try:
            async with (
                benchlib.admin_client(BENCH_SECRET, 3600, 30) as admin,
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
            ):
                sid = await benchlib.create_session(admin, server.url, "Fuzz", "T", False)
                # the attackers hold an observer and a coach link, never the teacher's
                invites = {r: benchlib.invite(BENCH_SECRET, sid, r) for r in ("observer", "coach")}
                teacher = Participant(server.url, benchlib.invite(BENCH_SECRET, sid, "teacher"))
                coach = Participant(server.url, benchlib.invite(BENCH_SECRET, sid, "coach"))
                await teacher.join()
                await teacher.publish(PatternVideoTrack(), "camera")
                await coach.join()
                await benchlib.wait_until(lambda: bool(coach.tracks(source="camera")), 15, "track")
                video = coach.tracks(source="camera")[0]
                await benchlib.wait_until(lambda: video.frames > 10, 15, "first frames")
                report["coach_fps_before"] = round(await fps_over(coach, args.window), 1)
                report["server_rss_mb_before"] = round(rss_mb(server.pid), 1)

                latencies: list[float] = []
                prober = asyncio.ensure_future(probe_healthz(server.url, http, latencies))
                attacks = [Attack(server.url, http, invites) for _ in range(args.workers)]
                frames0, t0 = video.frames, time.monotonic()
                per_worker = args.messages // args.workers + 1
                await asyncio.gather(*(worker(a, i, per_worker) for i, a in enumerate(attacks)))
                duration = time.monotonic() - t0
                report["coach_fps_during"] = round((video.frames - frames0) / duration, 1)
                prober.cancel()
                await asyncio.gather(prober, return_exceptions=True)
                report["server_rss_mb_after"] = round(rss_mb(server.pid), 1)
                report["coach_fps_after"] = round(await fps_over(coach, args.window), 1)

                codes: collections.Counter[str] = collections.Counter()
                for a in attacks:
                    codes.update(a.codes)
                report["messages"] = sum(a.sent for a in attacks)
                report["replies_by_code"] = dict(codes.most_common())
                report["no_reply"] = sum(a.no_reply for a in attacks)
                report["sockets_refused_at_open"] = sum(a.sockets_refused for a in attacks)
                report["duration_s"] = round(duration, 1)
                report["messages_per_s"] = round(report["messages"] / duration)
                report["healthz_ms_p50"] = benchlib.percentile(latencies, 50)
                report["healthz_ms_p99"] = benchlib.percentile(latencies, 99)
                report["healthz_samples"] = len(latencies)
                async with http.get(f"{server.url}/metrics") as resp:
                    report["metrics"] = _counters(await resp.text())
        except Exception as exc:  # reported, not raised: the JSON says what broke
            report["error"] = repr(exc)
        finally:
            for p in (teacher, coach):
                if p is not None:
                    await benchlib.close_all([p.close()])
            server.stop()
            log = server.log_path.read_text(errors="replace")
            report["tracebacks"] = count_tracebacks(log)
            report["first_traceback"] = first_traceback(log)
            report["server_log_bytes"] = len(log.encode())
            report["server_log_lines"] = log.count("\n")
    return report


def _counters(text: str) -> dict[str, float]:
    """Sidecoach's ``*_total`` samples from a /metrics page."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("sidecoach_") and "_total" in line:
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def render(r: dict[str, Any]) -> str:
    if "messages" not in r:
        return f"fuzz_signaling failed: {r.get('error')}"
    lines = [
        f"Messages sent: {r['messages']:,} in {r['duration_s']} s ({r['messages_per_s']:,}/s)",
        "Replies by code:",
        *(f"  {code:<20} {n:>9,}" for code, n in r["replies_by_code"].items()),
        f"Messages with no reply and no close: {r['no_reply']}",
        f"Sockets refused at open (limits): {r['sockets_refused_at_open']:,}",
        f"Tracebacks in the server log: {r['tracebacks']} "
        f"(log: {r['server_log_lines']:,} lines, {r['server_log_bytes']:,} bytes)",
        *([f"First traceback:\n{r['first_traceback']}"] if r.get("first_traceback") else []),
        f"Server RSS: {fmt(r['server_rss_mb_before'])} MB before, "
        f"{fmt(r['server_rss_mb_after'])} MB after",
        f"/healthz during the run: p50 {fmt(r['healthz_ms_p50'], '.1f')} ms, "
        f"p99 {fmt(r['healthz_ms_p99'], '.1f')} ms ({r['healthz_samples']} samples)",
        f"Coach fps: {fmt(r['coach_fps_before'])} before, {fmt(r['coach_fps_during'])} during, "
        f"{fmt(r['coach_fps_after'])} after",
    ]
    if r.get("error"):
        lines.append(f"ERROR: {r['error']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    benchlib.add_quick_and_json_args(parser, "3,000 messages (a smoke test)")
    parser.add_argument("--messages", type=int, default=None, help="messages to send (100,000)")
    parser.add_argument("--workers", type=int, default=8, help="concurrent hostile clients")
    parser.add_argument("--window", type=float, default=None, help="fps window before/after, s")
    benchlib.add_cache_and_verbose_args(parser, "unused (for the benchmark smoke runner)")
    args = parser.parse_args(argv)
    args.messages = args.messages or (3_000 if args.quick else 100_000)
    args.window = args.window or (2.0 if args.quick else 5.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    benchlib.configure_logging(args.verbose)
    report = benchlib.run_and_report(args, bench, render)
    ok = not report.get("error") and report.get("tracebacks") == 0 and report.get("no_reply") == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
