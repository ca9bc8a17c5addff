"""Recording benchmark: server CPU per recorded track, compared in the same
run with the cost of one forwarding Consumer of the same stream.

One Sidecoach server runs in its own process (``python -m server serve``,
started by this script, killed by PID at the end). For every measurement a
fresh session is created through the admin HTTP API, with
``settings.recording`` on or off; a teacher (``testkit.peers.Participant``)
publishes the same PRE-ENCODED VP8 clip as ``scripts/bench_forwarding.py``
(640x480, 30 fps, ~1 Mbit/s, keyframe every 2 s; never encoded by the
bench) and, in the audio configurations, the pre-encoded 32 kbit/s Opus clip
of ``scripts/bench_bug_in_ear.py`` as its mic. Configurations:

* **A**  recording off, 0 subscribers, video: the server just receives;
* **B**  recording off, 1 subscriber (an observer that never decodes: its
  receiver is tapped before aiortc's jitter buffer), video;
* **B2** recording off, 2 such subscribers, video;
* **C**  recording on, 0 subscribers, video;
* **Aa** recording off, 0 subscribers, video + audio;
* **D**  recording on, 0 subscribers, video + audio.

Derived, per round (the configurations of a round run back to back, so
slow drift of a shared machine mostly cancels), then mean +/- sd over
rounds:

* one forwarding Consumer            = B - A   (the first one)
* a second forwarding Consumer       = B2 - B  (the marginal one: the first
  subscriber costs clearly more than each further one, see bench_forwarding)
* one recorded video track           = C - A
* recorded video + audio (2 tracks)  = D - Aa   (and half of it per track)
* one recorded audio track           = (D - Aa) - (C - A)

CPU is utime+stime of the server process (all threads) from
``/proc/<pid>/stat`` over a fixed window after a warm-up, as % of one core;
it is also split into the event-loop thread and the other threads (the
Recorder's writer thread muxes and fsyncs there). Also measured in each
window: the bench process's CPU, the CPU of every other process on the
machine (it is shared), the bytes the track files grew by per second and the
server's write() calls per second (``/proc/<pid>/io``).

After all windows, every recording is checked: the session was ended with
``POST /api/sessions/{id}/end`` (the server finalizes the recording before
answering), the manifest must say ``finalized``, and ``ffprobe -count_frames``
must decode the recorded track files; their frame counts are reported next to
the frames the Recorder says it received.

All traffic stays on 127.0.0.1 (the clients restrict ICE to loopback, no
STUN/TURN server is configured anywhere).

Usage::

    .venv/bin/python scripts/bench_recording.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent)]  # benchlib; the server package

import aiohttp  # noqa: E402
import benchlib  # noqa: E402
from benchlib import BENCH_SECRET, CLK_TCK, CpuReading, SubscriberProbe, fmt  # noqa: E402

log = logging.getLogger("bench_recording")


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    recording: bool
    subscribers: int
    audio: bool


CONFIGS = (
    Config("A", "rec off, 0 subscribers, video", False, 0, False),
    Config("B", "rec off, 1 subscriber,  video", False, 1, False),
    Config("B2", "rec off, 2 subscribers, video", False, 2, False),
    Config("C", "rec ON,  0 subscribers, video", True, 0, False),
    Config("Aa", "rec off, 0 subscribers, video+audio", False, 0, True),
    Config("D", "rec ON,  0 subscribers, video+audio", True, 0, True),
)

#: derived cost name -> (plus configs, minus configs, divisor)
DERIVED: dict[str, tuple[tuple[str, ...], tuple[str, ...], float]] = {
    "forwarding_consumer": (("B",), ("A",), 1),
    "second_forwarding_consumer": (("B2",), ("B",), 1),
    "recorded_video_track": (("C",), ("A",), 1),
    "recorded_video_plus_audio": (("D",), ("Aa",), 1),
    "recorded_track_mean_of_video_and_audio": (("D",), ("Aa",), 2),
    "recorded_audio_track": (("D", "A"), ("Aa", "C"), 1),
    "receiving_audio": (("Aa",), ("A",), 1),
}
DERIVED_LABELS = {
    "forwarding_consumer": "one forwarding Consumer (B - A)",
    "second_forwarding_consumer": "a second forwarding Consumer (B2 - B)",
    "recorded_video_track": "one recorded video track (C - A)",
    "recorded_video_plus_audio": "recorded video + audio (D - Aa)",
    "recorded_track_mean_of_video_and_audio": "  per recorded track ((D - Aa) / 2)",
    "recorded_audio_track": "one recorded audio track ((D-Aa)-(C-A))",
    "receiving_audio": "(receiving the audio track: Aa - A)",
}


# ----------------------------------------------------------- /proc reads ----


def thread_runtime_ns(pid: int) -> dict[int, int]:
    """CPU time per thread of ``pid`` in ns (``/proc/<pid>/task/<tid>/schedstat``,
    the scheduler's own accounting: finer than the 10 ms ticks of utime+stime;
    a thread that exits within a window is not counted)."""
    out: dict[int, int] = {}
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with (
                contextlib.suppress(OSError, ValueError, IndexError),
                open(f"/proc/{pid}/task/{tid}/schedstat") as fh,
            ):
                out[int(tid)] = int(fh.read().split()[0])
    return out


def proc_io(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/io") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            with contextlib.suppress(ValueError):
                out[key.strip()] = int(value)
    return out


def track_files(directory: Path | None) -> dict[str, int]:
    """Size of every recorded track file in ``directory``."""
    if directory is None or not directory.exists():
        return {}
    sizes: dict[str, int] = {}
    for path in directory.iterdir():
        if path.suffix in (".webm", ".mkv") and path.name[:2].isdigit():
            with contextlib.suppress(OSError):
                sizes[path.name] = path.stat().st_size
    return sizes


@dataclass
class Snapshot:
    cpu: CpuReading
    threads: dict[int, int]
    io: dict[str, int]
    files: dict[str, int]
    sent: dict[int, tuple[int, int]]
    received: int

    @classmethod
    def take(cls, pid: int, rec_dir: Path | None, sent: SendCounter, received: int) -> Snapshot:
        return cls(
            cpu=CpuReading.take(pid),
            threads=thread_runtime_ns(pid),
            io=proc_io(pid),
            files=track_files(rec_dir),
            sent=dict(sent.by_ssrc),
            received=received,
        )


# --------------------------------------------------------------- clients ----


class SendCounter:
    """Counts the RTP packets (and payload bytes) a publisher writes, per
    SSRC (audio and video share one bundled transport)."""

    def __init__(self) -> None:
        self.by_ssrc: dict[int, tuple[int, int]] = {}
        self._installed: set[int] = set()

    def install(self, dtls: Any) -> None:
        if id(dtls) in self._installed:
            return
        self._installed.add(id(dtls))
        benchlib.on_rtp_sent(dtls, self._on_rtp)

    def _on_rtp(self, data: bytes) -> None:
        ssrc = int.from_bytes(data[8:12], "big")
        packets, size = self.by_ssrc.get(ssrc, (0, 0))
        payload = len(data) - benchlib.rtp_payload_offset(data)
        self.by_ssrc[ssrc] = (packets + 1, size + payload)

    def packets(self, ssrc: int) -> int:
        return self.by_ssrc.get(ssrc, (0, 0))[0]


class Server:
    """The Sidecoach server process and its admin API."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "sidecoach-data"
        self.process: benchlib.ServerProcess | None = None
        self.url = ""
        self.http: aiohttp.ClientSession | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True)
        log_path = self.workdir / "sidecoach.log"
        self.process = benchlib.sidecoach_server(self.data_dir, log_path, BENCH_SECRET)
        self.url = self.process.url
        await self.process.start()
        self.http = benchlib.admin_client(BENCH_SECRET, ttl_s=24 * 3600, timeout_s=60)

    async def create_session(self, title: str, recording: bool) -> str:
        assert self.http is not None
        return await benchlib.create_session(self.http, self.url, title, "Bench Teacher", recording)

    async def end_session(self, session_id: str) -> None:
        assert self.http is not None
        path = f"/api/sessions/{session_id}/end"
        async with self.http.post(self.url + path, json={}) as resp:
            if resp.status not in (200, 201):
                raise RuntimeError(f"POST {path}: HTTP {resp.status}: {await resp.text()}")

    def recording_dir(self, session_id: str) -> Path | None:
        dirs = sorted((self.data_dir / "recordings" / session_id).glob("*/"))
        return dirs[-1] if dirs else None

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
            self.http = None
        if self.process is not None:
            self.process.stop()

    def log_tail(self) -> str:
        return self.process.log_tail() if self.process is not None else ""


@dataclass
class Run:
    """One configuration, set up, measured for one window and torn down."""

    config: Config
    round: int
    session_id: str = ""
    clients: list[Any] = field(default_factory=list)
    tracks: list[Any] = field(default_factory=list)
    sent: SendCounter = field(default_factory=SendCounter)
    ssrcs: dict[str, int] = field(default_factory=dict)  # kind -> publisher SSRC
    subscribers: list[SubscriberProbe] = field(default_factory=list)
    rec_dir: Path | None = None


async def set_up(run: Run, server: Server, media: Media, settings: Settings) -> None:
    from testkit.peers import Participant

    cfg = run.config
    run.session_id = await server.create_session(f"bench {cfg.key} r{run.round}", cfg.recording)

    def invite(role: str) -> str:
        return benchlib.invite(BENCH_SECRET, run.session_id, role)

    teacher = Participant(server.url, invite("teacher"), decode=False)
    run.clients.append(teacher)
    await teacher.join("bench teacher")
    sources: list[tuple[Any, str]] = [(benchlib.VideoClipTrack(media.video), "camera")]
    if cfg.audio:
        sources.append((benchlib.OpusClipTrack(media.audio, start=0), "mic"))
    for track, source in sources:
        run.tracks.append(track)
        producer_id = await teacher.publish(track, source)
        await benchlib.wait_until(
            lambda p=producer_id: teacher.published(p), 20, f"{source} published"
        )
        for transceiver in teacher.pc.getTransceivers():
            if transceiver.sender.track is track:
                run.sent.install(transceiver.sender.transport)
                run.ssrcs[track.kind] = transceiver.sender._ssrc
    for kind, ssrc in run.ssrcs.items():
        await benchlib.wait_until(
            lambda s=ssrc: run.sent.packets(s) >= 10, 20, f"publisher sending {kind}"
        )
    for i in range(cfg.subscribers):
        probe = SubscriberProbe(f"sub{i + 1}")
        run.subscribers.append(probe)
        viewer = Participant(server.url, invite("observer"), decode=False)
        run.clients.append(viewer)
        benchlib.tap_new_tracks(viewer.pc, "video", probe.on_packet)
        await viewer.join(probe.name)
    if run.subscribers:
        await benchlib.wait_until(
            lambda: all(s.packets > 0 for s in run.subscribers), 20, "subscribers receiving"
        )
    if cfg.recording:
        n_files = len(sources)

        def recording() -> bool:
            run.rec_dir = server.recording_dir(run.session_id)
            sizes = track_files(run.rec_dir)
            return len(sizes) >= n_files and all(v > 0 for v in sizes.values())

        # the video track file starts at the publisher's next keyframe (<= 2 s)
        await benchlib.wait_until(recording, 20, "recorded track files growing")


async def tear_down(run: Run, server: Server) -> None:
    # Ending the session closes the teacher's producers first, and the server
    # then renegotiates with the remaining peers: the clients stop answering
    # now, so no offer races with their closing peer connections.
    for client in run.clients:
        client.answering = False
    try:
        if run.session_id:
            await asyncio.wait_for(server.end_session(run.session_id), 60)
    finally:
        await _close_quietly(run)


def measure(run: Run, pid: int, a: Snapshot, b: Snapshot) -> dict[str, Any]:
    elapsed = b.cpu.t - a.cpu.t
    pct = 100 / elapsed
    loop_thread = (b.threads.get(pid, 0) - a.threads.get(pid, 0)) / 1e9
    others = sum(v - a.threads.get(tid, 0) for tid, v in b.threads.items() if tid != pid) / 1e9
    sent = {}
    for kind, ssrc in run.ssrcs.items():
        p0, s0 = a.sent.get(ssrc, (0, 0))
        p1, s1 = b.sent.get(ssrc, (0, 0))
        sent[kind] = {"packets_per_s": round((p1 - p0) / elapsed, 1),
                      "payload_kbps": round((s1 - s0) * 8 / elapsed / 1000, 1)}  # fmt: skip
    out: dict[str, Any] = {
        "config": run.config.key,
        "round": run.round,
        "session": run.session_id,
        "window_s": round(elapsed, 3),
        "server_cpu_pct": round((b.cpu.server - a.cpu.server) * pct, 2),
        "server_cpu_pct_schedstat": round((loop_thread + others) * pct, 3),
        "server_loop_thread_cpu_pct": round(loop_thread * pct, 3),
        "server_other_threads_cpu_pct": round(others * pct, 3),
        "server_threads": len(b.threads),
        "bench_cpu_pct": round((b.cpu.bench - a.cpu.bench) * pct, 2),
        "other_processes_cpu_pct": round(b.cpu.others_since(a.cpu) * pct, 1),
        "publisher": sent,
        "server_write_calls_per_s": round(
            (b.io.get("syscw", 0) - a.io.get("syscw", 0)) / elapsed, 1
        ),
        "server_wchar_bytes_per_s": round((b.io.get("wchar", 0) - a.io.get("wchar", 0)) / elapsed),
        "server_block_write_bytes_per_s": round(
            (b.io.get("write_bytes", 0) - a.io.get("write_bytes", 0)) / elapsed
        ),
    }
    if run.subscribers:
        out["subscriber_packets_per_s"] = round((b.received - a.received) / elapsed, 1)
    if run.config.recording:
        files = {
            name: round((size - a.files.get(name, 0)) / elapsed)
            for name, size in sorted(b.files.items())
        }
        out["recorded_bytes_per_s"] = sum(files.values())
        out["recorded_bytes_per_s_by_file"] = files
        out["recording_dir"] = str(run.rec_dir) if run.rec_dir else None
    return out


async def run_one(run: Run, server: Server, media: Media, settings: Settings) -> dict[str, Any]:
    try:
        await asyncio.wait_for(set_up(run, server, media, settings), settings.connect_timeout_s)
        await asyncio.sleep(settings.warmup_s)

        def received() -> int:
            return sum(s.packets for s in run.subscribers)

        a = Snapshot.take(server.pid, run.rec_dir, run.sent, received())
        await asyncio.sleep(settings.window_s)
        b = Snapshot.take(server.pid, run.rec_dir, run.sent, received())
        result = measure(run, server.pid, a, b)
    except Exception as exc:  # keep going; report the failure
        log.exception("%s round %d failed", run.config.key, run.round)
        result = {
            "config": run.config.key,
            "round": run.round,
            "session": run.session_id,
            "error": f"{type(exc).__name__}: {exc}",
        }
    try:
        await tear_down(run, server)
    except Exception as exc:
        log.exception("ending %s failed", run.session_id)
        result.setdefault("error", f"ending the session: {type(exc).__name__}: {exc}")
    if run.config.recording and result.get("recording_dir") is None and run.rec_dir:
        result["recording_dir"] = str(run.rec_dir)
    log.info("%s", result)
    return result


# ----------------------------------------------------------- verification --


def ffprobe_frames(path: Path, kind: str) -> dict[str, Any]:
    """Decode every frame of ``path`` with ffprobe (``-count_frames``)."""
    cmd = [
        "ffprobe", "-v", "error", "-count_frames", "-select_streams", f"{kind[0]}:0",
        "-show_entries", "stream=codec_name,width,height,nb_read_frames",
        "-of", "json", str(path),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"readable": False, "error": f"{type(exc).__name__}: {exc}"}
    if proc.returncode != 0:
        return {"readable": False, "error": proc.stderr.strip()[-500:]}
    streams = json.loads(proc.stdout or "{}").get("streams") or [{}]
    info = streams[0]
    frames = int(info.get("nb_read_frames") or 0)
    out: dict[str, Any] = {
        "readable": frames > 0,
        "ffprobe_frames": frames,
        "codec": info.get("codec_name"),
    }
    if proc.stderr.strip():
        out["ffprobe_stderr"] = proc.stderr.strip()[-300:]
    if info.get("width"):
        out["size"] = f"{info['width']}x{info['height']}"
    return out


def verify_recording(directory: Path) -> dict[str, Any]:
    from server.recording.manifest import read_manifest

    manifest = read_manifest(directory)
    received = manifest.get("frames_received") or {}
    tracks = []
    for t in manifest.get("tracks", []):
        entry = {
            "file": t.get("file"),
            "kind": t.get("kind"),
            "frames_received": received.get(t.get("file")),
            "manifest_frames": t.get("frames"),
            "bytes": t.get("bytes"),
            "duration_s": round((t["end_ms"] - t["start_ms"]) / 1000, 2)
            if t.get("end_ms") is not None and t.get("start_ms") is not None
            else None,
        }
        entry.update(ffprobe_frames(directory / str(t.get("file")), str(t.get("kind"))))
        tracks.append(entry)
    return {
        "directory": str(directory),
        "state": manifest.get("state"),
        "error": manifest.get("error"),
        "bytes": manifest.get("bytes"),
        "tracks": tracks,
        "ok": manifest.get("state") == "finalized"
        and bool(tracks)
        and all(t.get("readable") for t in tracks),
    }


# -------------------------------------------------------------- summaries --


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None, "sd": None, "median": None, "min": None, "max": None}
    return {
        "n": len(values),
        "mean": round(statistics.fmean(values), 3),
        "median": round(statistics.median(values), 3),
        "sd": round(statistics.stdev(values), 3) if len(values) > 1 else None,
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def summarize(runs: list[dict[str, Any]], rounds: int, window_s: float) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    by_config: dict[str, Any] = {}
    for cfg in CONFIGS:
        mine = [r for r in ok if r["config"] == cfg.key]
        if not any(r["config"] == cfg.key for r in runs):
            continue
        entry: dict[str, Any] = {"label": cfg.label, "failed": sum(
            1 for r in runs if r["config"] == cfg.key and "error" in r
        )}  # fmt: skip
        for key in (
            "server_cpu_pct",
            "server_cpu_pct_schedstat",
            "server_loop_thread_cpu_pct",
            "server_other_threads_cpu_pct",
            "bench_cpu_pct",
            "other_processes_cpu_pct",
            "server_write_calls_per_s",
            "recorded_bytes_per_s",
        ):
            values = [r[key] for r in mine if r.get(key) is not None]
            if values:
                entry[key] = _stats(values)
        video_kbps = [
            r["publisher"]["video"]["payload_kbps"] for r in mine if "video" in r["publisher"]
        ]
        entry["publisher_video_kbps"] = _stats(video_kbps)
        by_config[cfg.key] = entry
    # utime+stime count 1/CLK_TCK s ticks: a window's CPU % is only good to
    # +/- one tick, so a ratio whose denominator is within 2 ticks is noise
    tick_pct = 100 / CLK_TCK / window_s
    out: dict[str, Any] = {"configs": by_config, "utime_stime_resolution_pct": round(tick_pct, 3)}
    metrics = (("server_cpu_pct", "", 2 * tick_pct), ("server_cpu_pct_schedstat", "_schedstat", 0))
    for metric, suffix, floor in metrics:
        derived = derive({(r["config"], r["round"]): r[metric] for r in ok}, rounds)
        out[f"derived_cpu_pct{suffix}"] = derived

        def ratio(
            num: str, den: str, derived: dict[str, Any] = derived, floor: float = floor
        ) -> float | None:
            a = derived.get(num, {}).get("mean")
            b = derived.get(den, {}).get("mean")
            return round(a / b, 2) if a is not None and b is not None and b > floor else None

        out[f"ratio_recorded_video_track_over_forwarding_consumer{suffix}"] = ratio(
            "recorded_video_track", "forwarding_consumer"
        )
        out[f"ratio_recorded_video_track_over_second_forwarding_consumer{suffix}"] = ratio(
            "recorded_video_track", "second_forwarding_consumer"
        )
        out[f"ratio_recorded_track_av_mean_over_forwarding_consumer{suffix}"] = ratio(
            "recorded_track_mean_of_video_and_audio", "forwarding_consumer"
        )
    return out


def derive(cpu: dict[tuple[str, int], float], rounds: int) -> dict[str, Any]:
    """The DERIVED costs, computed within each round, then summarized."""
    derived: dict[str, Any] = {}
    for name, (plus, minus, div) in DERIVED.items():
        per_round = []
        for rnd in range(rounds):
            if all((k, rnd) in cpu for k in plus + minus):
                value = sum(cpu[(k, rnd)] for k in plus) - sum(cpu[(k, rnd)] for k in minus)
                per_round.append(value / div)
        if per_round:
            derived[name] = {**_stats(per_round), "per_round": [round(v, 3) for v in per_round]}
    return derived


# -------------------------------------------------------------- reporting --


def _pm(s: dict[str, Any] | None, spec: str = ".2f") -> str:
    if not s or s.get("mean") is None:
        return "-"
    sd = s.get("sd")
    return f"{fmt(s['mean'], spec)} ± {fmt(sd, spec)}" if sd is not None else fmt(s["mean"], spec)


def _range(s: dict[str, Any] | None, spec: str = ".2f") -> str:
    if not s or s.get("min") is None:
        return "-"
    return f"{fmt(s['min'], spec)}..{fmt(s['max'], spec)}"


def _derived(s: dict[str, Any] | None) -> str:
    if not s:
        return "-"
    return f"{_pm(s)} [{_range(s)}] ({fmt(s.get('median'), '.2f')})"


def render(report: dict[str, Any]) -> str:
    st = report["settings"]
    summary = report["summary"]
    lines = [
        "Recording vs forwarding: one pre-encoded ~"
        f"{st['clip_video_payload_kbps']:.0f} kbit/s VP8 640x480 30 fps publisher"
        + (f" (+ {st['clip_audio_payload_kbps']:.0f} kbit/s Opus in Aa/D)" if st["audio"] else ""),
        f"Server process CPU (utime+stime, all threads), % of one core; {st['rounds']} rounds x "
        f"{st['window_s']:g} s windows after {st['warmup_s']:g} s warm-up, configurations "
        f"interleaved per round; {report['machine']['cpus']} CPUs (shared machine).",
        "mean ± sd over rounds [min..max]; utime+stime is good to ±"
        f"{summary['utime_stime_resolution_pct']:.2f} % per window (one tick).",
        "sched = the same from /proc/<pid>/task/*/schedstat (ns), split into loop = event-loop "
        "thread, thr = other threads (the Recorder's writer);",
        "bench = this script's process; others = every other process on the machine.",
        "",
        f"{'cfg':<3} {'configuration':<36} | {'CPU % utime+stime':>26} | {'sched %':>11} | "
        f"{'loop / thr %':>12} | {'bench %':>7} | {'others %':>8} | {'rec. kB/s':>9} | "
        f"{'write()/s':>9}",
        "-" * 147,
    ]
    for key, c in summary["configs"].items():
        loop = c.get("server_loop_thread_cpu_pct", {}).get("mean")
        thr = c.get("server_other_threads_cpu_pct", {}).get("mean")
        rec = c.get("recorded_bytes_per_s", {}).get("mean")
        failed = f"  ({c['failed']} failed)" if c.get("failed") else ""
        cpu = c.get("server_cpu_pct")
        lines.append(
            f"{key:<3} {c['label']:<36} | {_pm(cpu) + ' [' + _range(cpu) + ']':>26} | "
            f"{_pm(c.get('server_cpu_pct_schedstat')):>11} | "
            f"{fmt(loop, '.2f') + ' / ' + fmt(thr, '.2f'):>12} | "
            f"{fmt(c.get('bench_cpu_pct', {}).get('mean'), '.0f'):>7} | "
            f"{fmt(c.get('other_processes_cpu_pct', {}).get('mean'), '.0f'):>8} | "
            f"{fmt(None if rec is None else rec / 1000, '.1f'):>9} | "
            f"{fmt(c.get('server_write_calls_per_s', {}).get('mean'), '.0f'):>9}{failed}"
        )
    lines += [
        "",
        "Derived cost, % of one core (differences within each round, then "
        "mean ± sd [min..max] (median)):",
        f"  {'':<42} {'utime+stime':>36} | {'schedstat':>36}",
    ]
    for name, label in DERIVED_LABELS.items():
        d = summary["derived_cpu_pct"].get(name)
        e = summary["derived_cpu_pct_schedstat"].get(name)
        if d or e:
            lines.append(f"  {label:<42} {_derived(d):>36} | {_derived(e):>36}")
    for suffix, what in (("", "utime+stime"), ("_schedstat", "schedstat")):
        ratio = summary[f"ratio_recorded_video_track_over_forwarding_consumer{suffix}"]
        second = summary[f"ratio_recorded_video_track_over_second_forwarding_consumer{suffix}"]
        ratio_av = summary[f"ratio_recorded_track_av_mean_over_forwarding_consumer{suffix}"]
        lines.append(
            f"Ratio recorded video track / forwarding Consumer ({what}): {fmt(ratio, '.1f')}"
            f"  (/ second Consumer: {fmt(second, '.1f')}"
            + (f";  mean recorded track of D / forwarding Consumer: {fmt(ratio_av, '.1f')})"
               if ratio_av is not None else ")")
        )  # fmt: skip
    lines += [
        "",
        "Recordings (session ended via the admin API; ffprobe -count_frames decodes each file):",
    ]
    for rec in report["recordings"]:
        tracks = "; ".join(
            f"{t['kind']} {t.get('ffprobe_frames', 0)} frames decoded / "
            f"{t.get('frames_received')} received, {fmt(t.get('duration_s'), '.1f')} s, "
            f"{(t.get('bytes') or 0) / 1000:.0f} kB"
            for t in rec["tracks"]
        )
        status = "ok" if rec["ok"] else "NOT OK"
        lines.append(f"  {rec['config']} r{rec['round']}: {rec['state']}, {status}: {tracks}")
    for r in report["runs"]:
        if r.get("error"):
            lines.append(f"!! {r['config']} round {r['round']} failed: {r['error']}")
    if report.get("error"):
        lines.append(f"!! {report['error']}")
    return "\n".join(lines)


# ------------------------------------------------------------------ main ----


@dataclass
class Settings:
    rounds: int
    window_s: float
    warmup_s: float
    clip_s: int
    audio: bool
    connect_timeout_s: float = 40.0


@dataclass
class Media:
    video: list[bytes]
    audio: list[bytes]


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(
        rounds=args.rounds,
        window_s=args.window,
        warmup_s=args.warmup,
        clip_s=args.clip_seconds,
        audio=not args.no_audio,
    )
    cache = Path(args.cache_dir)
    video_clip = benchlib.make_video_clip(cache, settings.clip_s)
    media = Media(benchlib.load_video_clip(video_clip), [])
    audio_clip = None
    if settings.audio:
        audio_clip = benchlib.make_opus_clip(cache)
        media.audio = benchlib.load_opus_clip(audio_clip)
    configs = [c for c in CONFIGS if settings.audio or not c.audio]
    video_kbps = benchlib.clip_kbps(media.video, 1 / benchlib.FPS)
    audio_kbps = benchlib.clip_kbps(media.audio, benchlib.OPUS_FRAME_S) if media.audio else None
    report: dict[str, Any] = {
        "settings": {
            "rounds": settings.rounds,
            "window_s": settings.window_s,
            "warmup_s": settings.warmup_s,
            "audio": settings.audio,
            "configs": {c.key: c.label for c in configs},
            "video_clip": str(video_clip),
            "audio_clip": str(audio_clip) if audio_clip else None,
            "clip_video_payload_kbps": round(video_kbps, 1),
            "clip_audio_payload_kbps": round(audio_kbps, 1) if audio_kbps else None,
        },
        "machine": {**benchlib.machine_info(), "loadavg_at_start": os.getloadavg()},
        "runs": [],
        "recordings": [],
    }
    per_run = settings.warmup_s + settings.window_s + settings.connect_timeout_s + 70
    with tempfile.TemporaryDirectory(prefix="sidecoach-bench-rec-") as tmp:
        server = Server(Path(tmp))
        try:
            await server.start()
            report["server_pid"] = server.pid
            for rnd in range(settings.rounds):
                for cfg in configs:
                    run = Run(cfg, rnd)
                    try:
                        result = await asyncio.wait_for(
                            run_one(run, server, media, settings), per_run
                        )
                    except TimeoutError:
                        result = {"config": cfg.key, "round": rnd,
                                  "error": f"timed out after {per_run:.0f}s"}  # fmt: skip
                        await _close_quietly(run)
                    report["runs"].append(result)
            report["machine"]["loadavg_at_end"] = os.getloadavg()
            for r in report["runs"]:
                if r.get("recording_dir"):
                    checked = verify_recording(Path(r["recording_dir"]))
                    report["recordings"].append(
                        {"config": r["config"], "round": r["round"], **checked}
                    )
        except Exception as exc:
            log.exception("bench failed")
            report["error"] = f"{type(exc).__name__}: {exc}"
            report["server_log_tail"] = server.log_tail()
        finally:
            await server.stop()
    report["summary"] = summarize(report["runs"], settings.rounds, settings.window_s)
    return report


async def _close_quietly(run: Run) -> None:
    for track in run.tracks:
        track.stop()

    async def close(client: Any) -> None:
        client.answering = False
        with contextlib.suppress(Exception):
            if client.sio.connected:
                await client.sio.disconnect()
        await client.close()

    await benchlib.close_all(close(c) for c in run.clients)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    benchlib.add_quick_and_json_args(parser, "1 round, short windows (smoke test)")
    parser.add_argument("--rounds", type=int, default=None, help="repeats of each config (3)")
    parser.add_argument("--window", type=float, default=None, help="CPU window, s (8)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up per run, s (3)")
    parser.add_argument("--clip-seconds", type=int, default=None, help="video clip length, s (20)")
    parser.add_argument("--no-audio", action="store_true", help="skip the audio configs Aa and D")
    benchlib.add_cache_and_verbose_args(parser, "where the encoded clips are kept")
    args = parser.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds or (1 if quick else 3)
    args.window = args.window or (2.0 if quick else 8.0)
    args.warmup = args.warmup or (1.0 if quick else 3.0)
    args.clip_seconds = args.clip_seconds or (4 if quick else 20)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    benchlib.configure_logging(args.verbose)
    report = benchlib.run_and_report(args, bench, render)
    ok = (
        not report.get("error")
        and all(not r.get("error") for r in report["runs"])
        and all(r["ok"] for r in report["recordings"])
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
