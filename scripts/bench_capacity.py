"""Capacity: how many realistic coaching sessions one box serves, with one
node and with ``--workers 2`` (two nodes sharing a port, on Redis), in the
same run.

Each session: a teacher sending pre-encoded ~1 Mbit/s VP8 (640x480, 30 fps)
and Opus; three coaches that do not decode; the first coach cycling
push-to-talk (2 s on, 2 s off) on a pre-encoded Opus whisper; the second
sending a cue every 4 s; recording on. The clients run in separate load
processes (``capacity_load.py``, ``--clients`` of them) so they can use
every core; their CPU is measured and reported apart from the server's.

N grows through ``--levels`` until a level fails: a coach's video loses more
than 1 % of its packets or plays under 27 fps, or the whisper's
server-added p99 passes 20 ms. Numbers per level:

* server CPU (all its processes; % of one core), per session, and sessions
  per core (N / server cores used);
* whisper server-added latency: UDP datagram handed to the server's ICE
  connection -> the forwarded packet written (timed inside the server by
  the runtime wrappers of ``bench_bug_in_ear.ServerProbe``; with recording
  on this includes the Recorder's share);
* cue server-added latency: the coach's socket.io packet received by the
  node holding the coach's socket -> the cue packet queued for the
  teacher's socket on the node holding it (both on CLOCK_MONOTONIC, so
  across processes; with two workers this includes any relay between them);
* event-loop lag of the server processes and of the load processes;
* RSS per session (server processes, above their RSS before the first session);
* the load generator's CPU and everything else on the machine.

    .venv/bin/python scripts/bench_capacity.py [--quick] [--json PATH]
        [--levels 10,20,30,40,50] [--workers-list 1,2] [--gc-freeze] [--uvloop]

The server processes are ``capacity_serve.py`` (the real CLI and app, plus
the probes); with two workers they are started like ``serve --workers
2`` starts them (``--reuse-port``, a node id each, one Redis). Then one
session's shape runs on Janus (``capacity_janus.py``) for Sidecoach's CPU
per session as a ratio to Janus's; the script runs itself in a network
namespace of its own (``unshare -n``) with a veth address for that.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent)]

import benchjanus  # noqa: E402
import benchlib  # noqa: E402
import capacity_janus  # noqa: E402
import capacity_serve  # noqa: E402
from benchlib import fmt, percentile  # noqa: E402

SECRET = "bench-capacity-secret-" + "c" * 40
LEVELS = (10, 20, 30, 40, 50, 60)
QUICK_LEVELS = (2,)
MAX_LOSS_PCT = 1.0
MIN_FPS = 27.0
MAX_WHISPER_P99_MS = 20.0


# ------------------------------------------------------- orchestration ----


class Servers:
    """The server processes of one configuration (1 node, or N workers)."""

    def __init__(self, workdir: Path, workers: int, args: argparse.Namespace) -> None:
        self.workdir, self.workers = workdir, workers
        self.port = benchlib.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.redis: Any = None
        self.procs: list[subprocess.Popen[bytes]] = []
        self.controls: list[Path] = []
        self.args = args

    def start(self) -> None:
        extra: list[str] = []
        if self.workers > 1:
            from testkit.multinode import RedisProc

            self.redis = RedisProc(self.workdir / "redis")
            extra = ["--redis-url", self.redis.url, "--reuse-port"]
        env = benchlib.sidecoach_env(SECRET)
        # the bench makes many sessions with one admin token
        env["SIDECOACH_LIMIT_SESSIONS_PER_ADMIN_TOKEN_PER_MINUTE"] = "100000"
        for i in range(self.workers):
            control = self.workdir / f"control-{i}"
            control.mkdir(parents=True)
            self.controls.append(control)
            serve_args = benchlib.sidecoach_serve_args(self.port, self.workdir / "data") + extra
            if self.workers > 1:
                serve_args += ["--node-id", f"bench-w{i}"]
            cmd = [sys.executable, str(SCRIPTS / "capacity_serve.py"), "--control-dir",
                   str(control), *(["--gc-freeze"] if self.args.gc_freeze else []),
                   *(["--uvloop"] if self.args.uvloop else []), "--", *serve_args]  # fmt: skip
            log = open(self.workdir / f"server-{i}.log", "wb")  # noqa: SIM115
            self.procs.append(
                subprocess.Popen(cmd, cwd=benchlib.ROOT, env=env, stdout=log, stderr=log)
            )

    async def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for i, proc in enumerate(self.procs):
            log = self.workdir / f"server-{i}.log"
            while "listening on" not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server {i} did not start:\n{self.log_tail()}")
                await asyncio.sleep(0.1)
        async with benchlib.admin_client(SECRET, 3600, 10) as http:
            while True:
                with contextlib.suppress(Exception):
                    async with http.get(self.url + "/readyz") as resp:
                        body = await resp.json()
                        if resp.status == 200 and len(body.get("nodes", [1])) >= self.workers:
                            return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"servers not ready:\n{self.log_tail()}")
                await asyncio.sleep(0.2)

    async def signal_all(self, sig: int, name: str, timeout: float = 30) -> list[dict[str, Any]]:
        for control in self.controls:
            (control / name).unlink(missing_ok=True)
        for proc in self.procs:
            os.kill(proc.pid, sig)  # our own children, by PID
        out = []
        deadline = time.monotonic() + timeout
        for control in self.controls:
            while not (control / name).exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"a server did not write {name}:\n{self.log_tail()}")
                await asyncio.sleep(0.02)
            out.append(json.loads((control / name).read_text()))
        return out

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def log_tail(self) -> str:
        return "\n".join(
            (self.workdir / f"server-{i}.log").read_text(errors="replace")[-1500:]
            for i in range(len(self.procs))
        )

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self.redis is not None:
            self.redis.stop()


class LoadProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, url: str, video: Path, opus: Path) -> LoadProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(SCRIPTS / "capacity_load.py"), url, str(video), str(opus),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=benchlib.ROOT,
            limit=64 * 1024 * 1024,
        )  # fmt: skip
        load = cls(proc)
        await load.read()
        return load

    async def read(self, timeout: float = 600) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("a load process exited")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, command: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()
        return await self.read(timeout)

    async def quit(self) -> None:
        with contextlib.suppress(Exception):
            await self.ask({"cmd": "quit"}, timeout=1)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.wait(), 30)
        if self.proc.returncode is None:
            self.proc.kill()


async def wait_quiet(ours: list[int], max_wait_s: float, max_pct: float) -> dict[str, Any]:
    """The machine is shared: wait (at most ``max_wait_s``) until the other
    processes use under ``max_pct`` of a core over 2 s."""
    t0 = time.monotonic()
    other = None
    while time.monotonic() - t0 < max_wait_s:
        m0, c0 = benchlib.machine_busy_seconds(), cpu(ours)
        await asyncio.sleep(2.0)
        other = 100 * max(0.0, benchlib.machine_busy_seconds() - m0 - (cpu(ours) - c0)) / 2.0
        if other < max_pct:
            break
    return {"quiet_wait_s": round(time.monotonic() - t0, 1), "other_cpu_pct_before": other}


def cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += benchlib.cpu_seconds(pid)
    return total


def level_numbers(
    n: int, window_s: float, servers: list[dict[str, Any]], loads: list[dict[str, Any]],
    cpu_s: dict[str, float], rss_base_kb: int,
) -> dict[str, Any]:  # fmt: skip
    path = [v / 1000 for s in servers for v in s["whisper_path_us"]]
    received = {k: v for s in servers for k, v in s["cue_received"].items()}
    sent = {k: v for s in servers for k, v in s["cue_sent"].items()}
    texts = [t for lo in loads for t in lo["cue_texts"]]
    cue_ms = [(sent[t] - received[t]) / 1e6 for t in texts if t in sent and t in received]
    subscribers = [sub for lo in loads for sub in lo["subscribers"]]
    losses = [
        100 * (s["expected"] - s["received"]) / s["expected"] for s in subscribers if s["expected"]
    ]
    fps = [s["frames"] / s["seconds"] for s in subscribers if s["seconds"]]
    rss = sum(s["rss_kb"] for s in servers)
    server_pct = 100 * cpu_s["server"] / window_s
    out = {
        "n": n,
        "sessions_ready": sum(lo["sessions"] for lo in loads),
        "server_cpu_pct": round(server_pct, 1),
        "server_cpu_pct_per_session": round(server_pct / n, 2),
        "sessions_per_core": round(n / (server_pct / 100), 1) if server_pct else None,
        "load_cpu_pct": round(100 * cpu_s["load"] / window_s, 1),
        "machine_cpu_pct": round(100 * cpu_s["machine"] / window_s, 1),
        "other_cpu_pct": round(100 * cpu_s["other"] / window_s, 1),
        "whisper_server_ms_p50": percentile(path, 50),
        "whisper_server_ms_p99": percentile(path, 99),
        "whisper_server_samples": len(path),
        "cue_server_ms_p50": percentile(cue_ms, 50),
        "cue_server_ms_p99": percentile(cue_ms, 99),
        "cues_timed": len(cue_ms),
        "cues_sent": len(texts),
        "whisper_e2e_ms_p50": percentile([v for lo in loads for v in lo["whisper_e2e_ms"]], 50),
        "whisper_e2e_ms_p99": percentile([v for lo in loads for v in lo["whisper_e2e_ms"]], 99),
        "cue_e2e_ms_p99": percentile([v for lo in loads for v in lo["cue_e2e_ms"]], 99),
        "subscribers": len(subscribers),
        "subscribers_without_video": sum(1 for s in subscribers if not s["frames"]),
        "participants_removed": sum(lo["participants_removed"] for lo in loads),
        "participants_disconnected": sum(lo["participants_disconnected"] for lo in loads),
        "worst_loss_pct": round(max(losses), 2) if losses else None,
        "min_fps": round(min(fps), 1) if fps else None,
        "server_loop_lag_ms_p99": max(
            (percentile(s["loop_lag_ms"], 99) or 0.0 for s in servers), default=None
        ),
        "server_loop_lag_ms_max": max((max(s["loop_lag_ms"] or [0]) for s in servers), default=0),
        "load_loop_lag_ms_p99": max(
            (percentile(lo["loop_lag_ms"], 99) or 0.0 for lo in loads), default=None
        ),
        "server_rss_mb": round(rss / 1024, 1),
        "server_media_at_end": [s.get("media") for s in servers],
        "rss_mb_per_session": round((rss - rss_base_kb) / 1024 / n, 2),
    }
    out["passed"] = bool(
        out["sessions_ready"] == n
        and out["worst_loss_pct"] is not None
        and out["worst_loss_pct"] <= MAX_LOSS_PCT
        and (out["min_fps"] or 0) >= MIN_FPS
        and out["whisper_server_ms_p99"] is not None
        and out["whisper_server_ms_p99"] <= MAX_WHISPER_P99_MS
    )
    return out


async def run_config(
    workers: int, args: argparse.Namespace, clips: tuple[Path, Path]
) -> dict[str, Any]:
    name = "1 node" if workers == 1 else f"--workers {workers}"
    result: dict[str, Any] = {"name": name, "workers": workers, "levels": []}
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        servers = Servers(Path(tmp), workers, args)
        loads: list[LoadProcess] = []
        try:
            servers.start()
            await servers.wait_ready()
            rss_base = sum(capacity_serve.rss_kb(pid) for pid in servers.pids())
            loads = list(await asyncio.gather(
                *(LoadProcess.start(servers.url, *clips) for _ in range(args.clients))
            ))  # fmt: skip
            async with benchlib.admin_client(SECRET, 3600, 30) as http:
                ids = [
                    await benchlib.create_session(http, servers.url, f"L{i}", f"T{i}", True)
                    for i in range(max(args.levels))
                ]
            active = 0
            for n in args.levels:
                specs = [
                    {"index": i, "id": ids[i], "cue_interval_s": args.cue_interval, "tokens": {
                        "teacher": benchlib.invite(SECRET, ids[i], "teacher"),
                        **{f"coach{c}": benchlib.invite(SECRET, ids[i], "coach") for c in range(3)},
                    }} for i in range(active, n)
                ]  # fmt: skip
                added = await asyncio.gather(*(
                    load.ask({"cmd": "add", "sessions": specs[k :: len(loads)]})
                    for k, load in enumerate(loads)
                ))  # fmt: skip
                failed = [f for a in added for f in a["failed"]]
                active = n
                await asyncio.sleep(args.warmup)
                pids = servers.pids()
                load_pids = [lo.proc.pid for lo in loads]
                quiet = await wait_quiet(
                    [*pids, *load_pids, os.getpid()], args.quiet_wait, args.quiet_other_pct
                )
                t0, s0, l0 = time.monotonic(), cpu(pids), cpu(load_pids)
                m0 = benchlib.machine_busy_seconds()
                await servers.signal_all(signal.SIGUSR1, "started.json")
                await asyncio.gather(*(lo.ask({"cmd": "start"}) for lo in loads))
                await asyncio.sleep(args.window)
                load_stats = list(await asyncio.gather(*(lo.ask({"cmd": "stop"}) for lo in loads)))
                server_stats = await servers.signal_all(signal.SIGUSR2, "stats.json")
                dt = time.monotonic() - t0
                server_s, load_s = cpu(pids) - s0, cpu(load_pids) - l0
                machine_s = benchlib.machine_busy_seconds() - m0
                cpu_s = {"server": server_s, "load": load_s, "machine": machine_s,
                         "other": max(0.0, machine_s - server_s - load_s)}  # fmt: skip
                level = level_numbers(n, dt, server_stats, load_stats, cpu_s, rss_base)
                level["failed_setups"] = failed[:5]
                level.update(quiet)
                result["levels"].append(level)
                verdict = "ok" if level["passed"] else "FAILED"
                print(
                    f"  {name}: N={n} server {level['server_cpu_pct']}% load "
                    f"{level['load_cpu_pct']}% loss {level['worst_loss_pct']}% whisper p99 "
                    f"{level['whisper_server_ms_p99']} ms -> {verdict}",
                    file=sys.stderr,
                    flush=True,
                )
                if not level["passed"]:
                    level["server_log_tail"] = servers.log_tail()
                    break
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
            result["server_log_tail"] = servers.log_tail()
        finally:
            await asyncio.gather(*(lo.quit() for lo in loads))
            servers.stop()
    passed = [lv for lv in result["levels"] if lv["passed"]]
    result["capacity"] = passed[-1]["n"] if passed else 0
    result["at_capacity"] = passed[-1] if passed else None
    return result


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    cache = Path(args.cache_dir)
    video = benchlib.make_video_clip(cache, 6 if args.quick else 20)
    opus = benchlib.make_opus_clip(cache)
    report: dict[str, Any] = {
        "machine": benchlib.machine_info(),
        "settings": {
            "levels": args.levels, "window_s": args.window, "warmup_s": args.warmup,
            "load_processes": args.clients, "cue_interval_s": args.cue_interval,
            "gc_freeze": args.gc_freeze, "uvloop": args.uvloop,
            "pass": {"max_loss_pct": MAX_LOSS_PCT, "min_fps": MIN_FPS,
                     "max_whisper_server_p99_ms": MAX_WHISPER_P99_MS},
        },  # fmt: skip
        "configs": [],
    }
    for workers in args.workers_list:
        report["configs"].append(await run_config(workers, args, (video, opus)))
    if args.janus:
        report["janus_version"] = benchjanus.janus_version()
        report["janus"] = await capacity_janus.janus_session(
            benchlib.load_video_clip(video), benchlib.load_opus_clip(opus), args.window,
            args.warmup,
        )  # fmt: skip
        report["per_session_vs_janus"] = capacity_janus.ratios(report)
    caps = {c["workers"]: c["capacity"] for c in report["configs"]}
    if 1 in caps and len(caps) > 1:
        report["capacity_ratio_vs_1_node"] = {
            w: round(c / caps[1], 2) if caps[1] else None for w, c in caps.items()
        }
    return report


def render(report: dict[str, Any]) -> str:
    st = report["settings"]
    lines = [
        f"Capacity on {report['machine']['cpus']} CPUs: sessions of a teacher (1 Mbit/s VP8 +"
        f" Opus), 3 non-decoding coaches, push-to-talk whisper, a cue every"
        f" {st['cue_interval_s']:g} s, recording on;",
        f"{st['window_s']:g} s window per level; {st['load_processes']} load processes;"
        f" gc.freeze {'on' if st['gc_freeze'] else 'off'},"
        f" uvloop {'on' if st['uvloop'] else 'off'}."
        f" A level passes with coach video loss <= {MAX_LOSS_PCT}%, >= {MIN_FPS:g} fps, whisper"
        f" server-added p99 <= {MAX_WHISPER_P99_MS:g} ms.",
        "CPU in % of one core. srv = all server processes; load = the load generator.",
        "",
        f"{'config':>11} {'N':>4} | {'srv CPU':>7} {'/sess':>6} {'sess/core':>9} | "
        f"{'load':>6} {'other':>6} | {'loss%':>6} {'fps':>5} | {'whisper srv p50/p99 ms':>22} | "
        f"{'cue srv p50/p99 ms':>18} | {'lag p99 ms':>10} | {'RSS/sess MB':>11} | ok",
        "-" * 148,
    ]
    for config in report["configs"]:
        for lv in config["levels"]:
            lines.append(
                f"{config['name']:>11} {lv['n']:>4} | {fmt(lv['server_cpu_pct']):>7} "
                f"{fmt(lv['server_cpu_pct_per_session'], '.2f'):>6} "
                f"{fmt(lv['sessions_per_core']):>9} | {fmt(lv['load_cpu_pct']):>6} "
                f"{fmt(lv['other_cpu_pct']):>6} | {fmt(lv['worst_loss_pct'], '.2f'):>6} "
                f"{fmt(lv['min_fps']):>5} | "
                f"{fmt(lv['whisper_server_ms_p50'], '.2f'):>10} / "
                f"{fmt(lv['whisper_server_ms_p99'], '.2f'):<9} | "
                f"{fmt(lv['cue_server_ms_p50'], '.2f'):>8} / "
                f"{fmt(lv['cue_server_ms_p99'], '.2f'):<7} | "
                f"{fmt(lv['server_loop_lag_ms_p99'], '.1f'):>10} | "
                f"{fmt(lv['rss_mb_per_session'], '.2f'):>11} | {'yes' if lv['passed'] else 'NO'}"
            )  # fmt: skip
        if config.get("error"):
            lines.append(f"{config['name']:>11}: !! {config['error']}")
        for lv in config["levels"]:
            if (lv.get("other_cpu_pct") or 0) >= 30:
                lines.append(
                    f"{config['name']:>11} N={lv['n']}: the machine is shared: other processes"
                    f" used {lv['other_cpu_pct']}% of a core during the window (after waiting"
                    f" {lv.get('quiet_wait_s')} s for them)"
                )
    lines.append("")
    for config in report["configs"]:
        lines.append(f"{config['name']}: capacity {config['capacity']} sessions")
    if report.get("capacity_ratio_vs_1_node"):
        lines.append(f"capacity vs 1 node: {report['capacity_ratio_vs_1_node']}")
    return "\n".join(lines + capacity_janus.render_lines(report))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    benchlib.add_quick_and_json_args(parser, "N=2, short windows (smoke)")
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--workers-list", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, 2], help="configurations to compare (1,2)")  # fmt: skip
    parser.add_argument("--window", type=float, default=None, help="s per level (15; quick 2)")
    parser.add_argument("--warmup", type=float, default=None, help="s before it (5; quick 1)")
    parser.add_argument("--cue-interval", type=float, default=None, help="s (4; quick 0.5)")
    parser.add_argument("--clients", type=int, default=None, help="load processes (one per CPU)")
    parser.add_argument("--quiet-wait", type=float, default=None,
                        help="before each window wait up to this long for other processes to"
                        " calm down, s (180; quick 0)")  # fmt: skip
    parser.add_argument("--quiet-other-pct", type=float, default=30.0,
                        help="... until they use under this %% of a core (30)")  # fmt: skip
    parser.add_argument("--gc-freeze", action="store_true", help="servers: gc.freeze() after start")
    parser.add_argument("--uvloop", action="store_true", help="servers run on uvloop")
    parser.add_argument("--no-janus", dest="janus", action="store_false",
                        help="skip the Janus session shape (one session: a CPU ratio)")
    benchlib.add_cache_and_verbose_args(parser, "where the encoded clips are kept")
    args = parser.parse_args(argv)
    args.levels = args.levels or list(QUICK_LEVELS if args.quick else LEVELS)
    args.window = args.window or (2.0 if args.quick else 15.0)
    args.warmup = args.warmup or (1.0 if args.quick else 5.0)
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if args.quick else 180.0
    args.cue_interval = args.cue_interval or (0.5 if args.quick else 4.0)
    args.clients = args.clients or (1 if args.quick else os.cpu_count() or 1)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    benchlib.configure_logging(args.verbose)
    benchjanus.reexec_in_own_netns("bench_capacity")  # Janus needs a veth address
    if args.janus and benchjanus.janus_unavailable():
        print(f"bench_capacity: {benchjanus.janus_unavailable()}", file=sys.stderr)
        return 2
    if args.janus:
        benchjanus.add_bench_address()
    report = benchlib.run_and_report(args, bench, render)
    failed = any(c.get("error") or not c["levels"] for c in report["configs"])
    failed = failed or bool(report.get("janus", {}).get("error"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
