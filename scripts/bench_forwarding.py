"""Forwarding benchmark: Sidecoach against Janus, in one run, on one machine.

One publisher sends pre-encoded VP8 (640x480, 30 fps, ~1 Mbit/s; made once
with ffmpeg and cached, so the publisher never encodes) to N = 0, 1, 2, 4,
8, 16 subscribers that never decode (their receivers are tapped with
``server.media.aiortc_adapter.tap_receiver``: packets are counted and
time-stamped before aiortc's jitter buffer and decoder). Each server runs
in its own process and is measured in turn, with the same clients:

* **janus**: Debian's Janus (VideoRoom plugin, HTTP API; see
  ``benchjanus.py``), the reference C SFU;
* **sidecoach**: ``python -m server serve``, recording off;
* **sidecoach-rec**: the same, recording on (the Recorder is one more
  consumer, muxing WebM with PyAV);
* **baseline** (only if asked, ``--servers``): aiortc's ``MediaRelay``
  (``bench_baseline_relay.py``), decoding once and re-encoding per subscriber.

The bench runs itself again in a network namespace of its own (``unshare
-n``) and gives it a veth address in 198.18.0.0/15: Janus never gathers ICE
candidates on loopback. Every server and client uses that address; no
STUN/TURN server is configured anywhere; nothing leaves the namespace. The
servers the bench starts are stopped by PID.

Measured, per server:

1. **Idle** server CPU (no client) over one window, then at each N after a
   warm-up: **server CPU**, the CPU time of all the server's threads from
   ``/proc/<pid>/task/*/schedstat`` (ns; ``/proc/<pid>/stat``'s 10 ms ticks
   if a thread ended in the window), as % of one core; the slope (% per
   added subscriber, least squares over N) and the ratios to Janus measured
   in the same run: per subscriber, at N = 16 and at N = 0 (the publisher
   alone). Per packet: the slope is turned into microseconds per forwarded
   packet per subscriber, and N = 0 minus idle into microseconds per
   received packet; both are compared with the **floor** measured in this
   process (``fwdcost.py``: RTP header rewrite + SRTP protect + ``sendto``).
2. **Latency**, publisher send -> subscriber kernel receive, per packet
   (``forwarding_probes.py``): the publisher stamps each packet before SRTP,
   each subscriber's socket stamps it in the kernel (``SO_TIMESTAMPNS``);
   matched by payload (forwarded byte-identical). The time at the
   subscriber's tap (after the bench's own SRTP and RTP parsing) is
   reported too. The re-encoding baseline is matched per frame instead.

``--profile DIR`` records each server with ``py-spy record --native``
(or ``--profiler perf``: ``perf record -g``) during its top level's
window; ``profile_summary.py`` reads py-spy's output. py-spy pauses the
process to sample: CPU figures of a profiled run are not comparable.

    .venv/bin/python scripts/bench_forwarding.py [--quick] [--json out.json]
        [--servers janus,sidecoach,sidecoach-rec] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent)]  # benchlib; the server package

import benchjanus  # noqa: E402
import benchlib  # noqa: E402
import fwdcost  # noqa: E402
import fwdpath  # noqa: E402
import numpy as np  # noqa: E402
from benchjanus import BENCH_IP  # noqa: E402
from benchlib import fmt, fmt_p50_p99  # noqa: E402
from forwarding_probes import ForwardedProbe, PublisherProbe  # noqa: E402
from forwarding_targets import TARGETS, Target  # noqa: E402

LEVELS = (0, 1, 2, 4, 8, 16)
QUICK_LEVELS = (0, 1, 2)
SERVERS = ("janus", "sidecoach", "sidecoach-rec")
ALL_SERVERS = (*SERVERS, "baseline")

#: before a window: wait at most this long for the rest of the machine to
#: use under --quiet-other-pct of a core, sampling it this often
QUIET_WAIT_S = 60.0
QUIET_SAMPLE_S = 1.0
SUBSCRIBE_ATTEMPTS = 2
#: a level counts only if every subscriber got this share of what was sent
MIN_DELIVERED = 0.95

log = logging.getLogger("bench")


# ------------------------------------------------------------- measuring ----


@dataclass
class Settings:
    levels: tuple[int, ...]
    window_s: float
    warmup_s: float
    clip_s: int
    profile_dir: Path | None = None
    profiler: str = "py-spy"
    quiet_wait_s: float = 0.0
    quiet_other_pct: float = 100.0
    connect_timeout_s: float = 30.0


class Profiler:
    """A profile of one process for one window: ``py-spy record --native``
    (Python and native frames; collapsed stacks for profile_summary.py),
    or ``perf record -g`` (kernel and native frames: how much is kernel)."""

    def __init__(self, out_dir: Path, name: str, pid: int, seconds: float, tool: str) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        duration = str(max(1, round(seconds)))
        if tool == "perf":
            self.out = out_dir / f"{name}.perf"
            cmd = ["perf", "record", "-e", "cpu-clock", "-F", "1000", "-g", "-p", str(pid),
                   "-o", str(self.out), "--", "sleep", duration]  # fmt: skip
        else:
            self.out = out_dir / f"{name}.txt"
            py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            cmd = [py_spy, "record", "--native", "--pid", str(pid), "--duration", duration,
                   "--rate", "250", "--format", "raw", "--output", str(self.out)]  # fmt: skip
        self.log = open(out_dir / f"{name}.{tool}.log", "wb")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self) -> None:
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # ours, by PID
            self.proc.wait(timeout=5)
        self.log.close()


def _server_cpu_s(
    r0: benchlib.CpuReading, r1: benchlib.CpuReading, t0: dict[int, int], t1: dict[int, int]
) -> float:
    """The server's CPU seconds between two readings: from its threads'
    schedstat (exact) unless a thread ended meanwhile, else from its ticks."""
    exact = benchlib.exact_cpu_seconds(t0, t1)
    return exact if exact is not None else r1.server - r0.server


async def measure_level(
    target: Target, pub: PublisherProbe, subs: list[ForwardedProbe], n: int,
    settings: Settings, profile: bool,
) -> dict[str, Any]:  # fmt: skip
    for s in subs:
        s.start_window()
    pid = target.server.pid
    before = [(s.packets, s.payload_bytes) for s in subs]
    pub_before = pub.packets
    profiler = (
        Profiler(settings.profile_dir, target.name, pid, settings.window_s, settings.profiler)
        if profile and settings.profile_dir is not None
        else None
    )
    t0, r0 = benchlib.thread_cpu_ns(pid), benchlib.CpuReading.take(pid)
    await asyncio.sleep(settings.window_s)
    r1, t1 = benchlib.CpuReading.take(pid), benchlib.thread_cpu_ns(pid)
    for s in subs:
        s.stop_window()
    if profiler is not None:
        await asyncio.get_running_loop().run_in_executor(None, profiler.wait)
    elapsed = r1.t - r0.t
    kernel: list[float] = []
    tap: list[float] = []
    unmatched = matched_subs = 0
    for s in subs:
        k, t, missing = target.latencies(s, pub)
        kernel.extend(k)
        tap.extend(t)
        unmatched += missing
        matched_subs += bool(k)
    received = [s.packets - p for s, (p, _) in zip(subs, before, strict=True)]
    kbps = [
        (s.payload_bytes - b) * 8 / elapsed / 1000 for s, (_, b) in zip(subs, before, strict=True)
    ]
    level = {
        "n": n,
        "window_s": round(elapsed, 3),
        "server_cpu_pct": round(_server_cpu_s(r0, r1, t0, t1) / elapsed * 100, 3),
        "server_cpu_pct_ticks": round((r1.server - r0.server) / elapsed * 100, 2),
        "bench_process_cpu_pct": round((r1.bench - r0.bench) / elapsed * 100, 2),
        "other_cpu_pct": round(r1.others_since(r0) / elapsed * 100, 1),
        "latency_ms_p50": benchlib.percentile(kernel, 50),
        "latency_ms_p99": benchlib.percentile(kernel, 99),
        "latency_samples": len(kernel),
        "tap_latency_ms_p50": benchlib.percentile(tap, 50),
        "tap_latency_ms_p99": benchlib.percentile(tap, 99),
        "latency_unmatched": unmatched,
        "subscribers_matched": matched_subs,
        "publisher_packets": pub.packets - pub_before,
        "publisher_pps": round((pub.packets - pub_before) / elapsed, 1),
        "subscriber_packets_min": min(received, default=0),
        "delivered_min": round(min(received, default=0) / max(1, pub.packets - pub_before), 3),
        "subscriber_packets_mean": round(sum(received) / n, 1) if n else 0,
        "subscriber_payload_kbps_mean": round(sum(kbps) / n, 1) if n else 0,
    }
    if profiler is not None:
        level["profile"] = str(profiler.out)
    return level


async def wait_quiet(server_pid: int, settings: Settings) -> dict[str, Any]:
    """The machine is shared: wait (at most ``settings.quiet_wait_s``) until
    the other processes use under ``settings.quiet_other_pct`` of a core."""
    start, other = time.monotonic(), None
    ours = (server_pid, os.getpid())
    while True:
        m0, c0 = benchlib.machine_busy_seconds(), sum(map(benchlib.cpu_seconds, ours))
        await asyncio.sleep(QUIET_SAMPLE_S)
        busy = benchlib.machine_busy_seconds() - m0 - (sum(map(benchlib.cpu_seconds, ours)) - c0)
        other = round(100 * max(0.0, busy) / QUIET_SAMPLE_S, 1)
        waited = time.monotonic() - start
        if other < settings.quiet_other_pct or waited >= settings.quiet_wait_s:
            return {"quiet_wait_s": round(waited, 1), "other_cpu_pct_before": other}


async def add_subscriber(target: Target, probe: ForwardedProbe, settings: Settings) -> None:
    """``target.add_subscriber``, tried again once (a loaded machine can
    time a signaling connection out)."""
    for attempt in range(SUBSCRIBE_ATTEMPTS):
        try:
            await asyncio.wait_for(target.add_subscriber(probe), settings.connect_timeout_s)
            return
        except (OSError, TimeoutError) as exc:
            if attempt + 1 == SUBSCRIBE_ATTEMPTS:
                raise
            log.warning("%s: subscriber %s failed (%s); again", target.name, probe.name, exc)


async def run_target(
    target: Target, frames: list[bytes], settings: Settings, workdir: Path
) -> dict[str, Any]:
    result: dict[str, Any] = {"server": target.name, "latency_unit": target.latency_unit,
                              "levels": []}  # fmt: skip
    track = benchlib.VideoClipTrack(frames)
    pub = PublisherProbe()
    subs: list[ForwardedProbe] = []
    try:
        await target.start(workdir)
        pid = result["pid"] = target.server.pid
        await asyncio.sleep(settings.warmup_s)
        result["idle_quiet"] = await wait_quiet(pid, settings)
        t0, r0 = benchlib.thread_cpu_ns(pid), benchlib.CpuReading.take(pid)
        await asyncio.sleep(settings.window_s)
        r1, t1 = benchlib.CpuReading.take(pid), benchlib.thread_cpu_ns(pid)
        result["idle_cpu_pct"] = round(_server_cpu_s(r0, r1, t0, t1) / (r1.t - r0.t) * 100, 3)
        await asyncio.wait_for(target.add_publisher(track, pub), settings.connect_timeout_s)
        await benchlib.wait_until(
            lambda: pub.packets >= 10, settings.connect_timeout_s, "publisher sending"
        )
        for n in settings.levels:
            while len(subs) < n:
                probe = ForwardedProbe(f"sub{len(subs) + 1}")
                subs.append(probe)
                await add_subscriber(target, probe, settings)
            await benchlib.wait_until(
                lambda: all(s.packets > 0 for s in subs),
                settings.connect_timeout_s,
                f"{target.name}: all {n} subscribers receiving",
            )
            await asyncio.sleep(settings.warmup_s)
            quiet = await wait_quiet(pid, settings)
            top = n == max(settings.levels)
            level = await measure_level(target, pub, subs, n, settings, top)
            level.update(quiet)
            result["levels"].append(level)
            log.info("%s %s", target.name, level)
    except Exception as exc:  # keep what was measured; report the failure
        log.exception("%s failed", target.name)
        result["error"] = f"{type(exc).__name__}: {exc}"
        if getattr(target, "server", None) is not None:
            result["server_log_tail"] = target.server.log_tail()
    finally:
        track.stop()
        await target.close()
        if getattr(target, "server", None) is not None:
            target.server.stop()
    result["slope_pct_per_subscriber"], result["intercept_pct"] = _fit(result["levels"])
    result["publisher_packets_total"] = pub.packets
    return result


def _delivered(level: dict[str, Any]) -> bool:
    """Whether every subscriber got (nearly) all the publisher sent: a
    server starved of CPU by the rest of the machine drops packets, and its
    CPU figure then says nothing about its cost."""
    return level["n"] == 0 or level.get("delivered_min", 0) >= MIN_DELIVERED


def _fit(levels: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    levels = [lv for lv in levels if _delivered(lv)]
    if len(levels) < 2:
        return None, None
    x = np.array([lv["n"] for lv in levels], dtype=float)
    y = np.array([lv["server_cpu_pct"] for lv in levels], dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    return round(float(slope), 4), round(float(intercept), 3)


def _ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    return round(a / b, digits) if a is not None and b else None


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """Per server: per-packet costs, and ratios to Janus and to the floor."""
    servers = report["servers"]
    floor_us = report["floor"].get("floor_us_per_packet")
    janus = servers.get("janus", {})
    jl = {lv["n"]: lv for lv in janus.get("levels", []) if _delivered(lv)}
    out: dict[str, Any] = {}
    for name, res in servers.items():
        levels = {lv["n"]: lv for lv in res.get("levels", []) if _delivered(lv)}
        pps = np.mean([lv["publisher_pps"] for lv in levels.values()]) if levels else None
        slope = res.get("slope_pct_per_subscriber")
        top = max(levels, default=None)
        n0 = levels.get(0, {}).get("server_cpu_pct")
        idle = res.get("idle_cpu_pct")
        us_consumer = us_producer = None
        if pps and slope is not None:
            us_consumer = slope / 100 * 1e6 / pps
        if pps and n0 is not None and idle is not None:
            us_producer = (n0 - idle) / 100 * 1e6 / pps
        out[name] = {
            "publisher_pps": round(float(pps), 1) if pps else None,
            "us_per_packet_per_subscriber": round(us_consumer, 2) if us_consumer else None,
            "us_per_packet_publisher_alone": round(us_producer, 2) if us_producer else None,
            "per_subscriber_over_floor": _ratio(us_consumer, floor_us, 1),
            "per_subscriber_vs_janus": _ratio(slope, janus.get("slope_pct_per_subscriber")),
            "top_n": top,
            "top_vs_janus": _ratio(levels.get(top, {}).get("server_cpu_pct"),
                                   jl.get(top, {}).get("server_cpu_pct")),  # fmt: skip
            "n0_vs_janus": _ratio(n0, jl.get(0, {}).get("server_cpu_pct")),
            "starved_levels": [lv["n"] for lv in res.get("levels", []) if not _delivered(lv)],
        }
    return out


# -------------------------------------------------------------- reporting ----


def render(report: dict[str, Any]) -> str:
    servers = report["servers"]
    names = list(servers)
    levels = {name: {lv["n"]: lv for lv in res.get("levels", [])} for name, res in servers.items()}
    cpus, window = report["machine"]["cpus"], report["settings"]["window_s"]
    lines = [
        "Forwarding one ~1 Mbit/s VP8 30 fps publisher to N non-decoding subscribers "
        f"({cpus} CPUs, {window:g} s windows, {report.get('janus_version') or 'no Janus'})",
        "CPU: server process, all threads, % of one core.  Latency: publisher send -> "
        "subscriber kernel receive, ms, p50 / p99.",
        "",
        f"{'N':>3} | " + " | ".join(f"{n + ' CPU %':>19}" for n in names)
        + " | " + " | ".join(f"{n + ' ms':>19}" for n in names),
        "-" * (6 + 44 * len(names)),
    ]  # fmt: skip
    for n in sorted({k for lv in levels.values() for k in lv}):
        row = [levels[s].get(n, {}) for s in names]
        cpu = " | ".join(f"{fmt(lv.get('server_cpu_pct'), '.2f'):>19}" for lv in row)
        lat = " | ".join(f"{fmt_p50_p99(lv, 'latency_ms', '.2f'):>19}" for lv in row)
        lines.append(f"{n:>3} | {cpu} | {lat}")
    lines.append(
        "idle| " + " | ".join(f"{fmt(servers[s].get('idle_cpu_pct'), '.2f'):>19}" for s in names)
    )
    floor, path = report["floor"], report["path"]
    lines += [
        "",
        f"Floor (this process: RTP header rewrite + SRTP protect + sendto on loopback): "
        f"{fmt(floor.get('floor_us_per_packet'), '.2f')} us per packet "
        f"(protect {fmt(floor.get('protect_us'), '.2f')}, "
        f"sendto {fmt(floor.get('sendto_us'), '.2f')})",
        "In this process, the real code (fwdpath.py): receive path + Producer "
        f"{fmt(path.get('producer_us'), '.1f')} us per packet; each Consumer "
        f"{fmt(path.get('consumer_us'), '.1f')} us per packet "
        f"({fmt(_ratio(path.get('consumer_us'), floor.get('floor_us_per_packet'), 1), '.1f')}"
        f" x floor); the Recorder {fmt(path.get('recorder_us'), '.1f')} us per packet",
        "",
        f"{'server':>14} | {'%/sub':>7} | {'us/pkt/sub':>10} | {'x floor':>7} | "
        f"{'us/pkt pub':>10} | {'/sub vs J':>9} | {'N=top vs J':>10} | {'N=0 vs J':>8}",
        "-" * 98,
    ]
    for name, s in report["summary"].items():
        lines.append(
            f"{name:>14} | {fmt(servers[name].get('slope_pct_per_subscriber'), '.3f'):>7} | "
            f"{fmt(s['us_per_packet_per_subscriber'], '.1f'):>10} | "
            f"{fmt(s['per_subscriber_over_floor'], '.1f'):>7} | "
            f"{fmt(s['us_per_packet_publisher_alone'], '.1f'):>10} | "
            f"{fmt(s['per_subscriber_vs_janus'], '.2f'):>9} | "
            f"{fmt(s['top_vs_janus'], '.2f'):>10} | "
            f"{fmt(s['n0_vs_janus'], '.2f'):>8}"
        )
    lines.append(
        "us/pkt/sub: the slope per forwarded packet; us/pkt pub: (N=0 - idle) per received "
        "packet; 'vs J': ratio to Janus in this run."
    )
    for name, res in servers.items():
        if report["summary"].get(name, {}).get("starved_levels"):
            lines.append(f"note: {name} lost packets (a subscriber got < {MIN_DELIVERED:.0%})"
                         f" at N = {report['summary'][name]['starved_levels']}: left out of the"
                         " fit and the ratios")  # fmt: skip
        others = [lv["other_cpu_pct"] for lv in res.get("levels", [])]
        if others and max(others) >= 20:
            lines.append(f"note: other processes used up to {max(others)}% of a core during "
                         f"{name}'s windows (the machine is shared)")  # fmt: skip
        if res.get("error"):
            lines.append(f"!! {name} failed: {res['error']}")
    return "\n".join(lines)


# ------------------------------------------------------------------ main ----


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(
        levels=tuple(args.levels), window_s=args.window, warmup_s=args.warmup,
        clip_s=args.clip_seconds, profile_dir=Path(args.profile) if args.profile else None,
        profiler=args.profiler, quiet_wait_s=args.quiet_wait, quiet_other_pct=args.quiet_other_pct,
    )  # fmt: skip
    benchjanus.add_bench_address()
    clip = benchlib.make_video_clip(Path(args.cache_dir), settings.clip_s)
    frames = benchlib.load_video_clip(clip)
    report: dict[str, Any] = {
        "settings": {
            "levels": list(settings.levels), "window_s": settings.window_s,
            "warmup_s": settings.warmup_s, "clip": str(clip), "clip_frames": len(frames),
            "clip_payload_kbps": round(benchlib.clip_kbps(frames, 1 / benchlib.FPS), 1),
            "ice_ip": BENCH_IP, "profiled": bool(args.profile), "quiet_wait_s": args.quiet_wait,
            "quiet_other_pct": args.quiet_other_pct,
        },  # fmt: skip
        "machine": benchlib.machine_info(),
        "janus_version": benchjanus.janus_version(),
        "latency_definition": (
            "publisher RTCDtlsTransport._send_rtp entry (before SRTP), time.time() -> "
            "subscriber socket SO_TIMESTAMPNS (kernel receive); tap_latency: -> subscriber "
            "tap (after SRTP unprotect + RTP parse in the bench process)"
        ),
        "floor": fwdcost.floor(quick=args.quick),
        "path": await fwdpath.measure(BENCH_IP, frames, quick=args.quick),
        "servers": {},
    }
    with tempfile.TemporaryDirectory(prefix="sidecoach-bench-") as tmp:
        for name in args.servers:
            workdir = Path(tmp) / name
            workdir.mkdir()
            budget = 90 + (len(settings.levels) + 1) * (
                settings.window_s + settings.warmup_s + settings.quiet_wait_s + 40
            )
            try:
                result = await asyncio.wait_for(
                    run_target(TARGETS[name](), frames, settings, workdir), budget
                )
            except TimeoutError:
                result = {"server": name, "levels": [], "error": f"timed out after {budget:.0f}s"}
            report["servers"][name] = result
    report["summary"] = summarize(report)
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    benchlib.add_quick_and_json_args(parser, "N=0,1,2 with short windows (smoke test)")
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--window", type=float, default=None, help="CPU/latency window, s (8)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up per level, s (3)")
    parser.add_argument("--clip-seconds", type=int, default=None, help="clip length, s (20)")
    parser.add_argument(
        "--servers", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        default=list(SERVERS), help=f"comma list of {', '.join(ALL_SERVERS)}",
    )  # fmt: skip
    parser.add_argument("--profile", metavar="DIR", help="profile each server's top level into DIR")
    parser.add_argument("--profiler", choices=("py-spy", "perf"), default="py-spy",
                        help="py-spy record --native (default) or perf record -g")
    parser.add_argument("--quiet-wait", type=float, default=None,
                        help="before each window wait up to this long for other processes to"
                        " calm down, s (60; quick 0)")  # fmt: skip
    parser.add_argument("--quiet-other-pct", type=float, default=50.0,
                        help="... until they use under this %% of a core (50)")  # fmt: skip
    benchlib.add_cache_and_verbose_args(parser, "where the encoded clip is kept")
    args = parser.parse_args(argv)
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if args.quick else QUIET_WAIT_S
    quick = args.quick
    args.levels = args.levels or list(QUICK_LEVELS if quick else LEVELS)
    args.window = args.window or (2.0 if quick else 8.0)
    args.warmup = args.warmup or (1.0 if quick else 3.0)
    args.clip_seconds = args.clip_seconds or (4 if quick else 20)
    for name in args.servers:
        if name not in ALL_SERVERS:
            parser.error(f"unknown server {name!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    benchjanus.reexec_in_own_netns("bench_forwarding")
    benchlib.configure_logging(args.verbose)
    if "janus" in args.servers and benchjanus.janus_unavailable():
        print(f"bench_forwarding: {benchjanus.janus_unavailable()}", file=sys.stderr)
        return 2
    report = benchlib.run_and_report(args, bench, render)
    ok = all(not r.get("error") for r in report["servers"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
