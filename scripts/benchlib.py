"""What the benchmark scripts share: the server processes they start, the
admin API and invites, the pre-encoded clips and the tracks that pace them,
RTP send / receive probes, CPU readings from ``/proc``, small statistics and
the command line, logging and report plumbing.

Used by ``bench_forwarding.py``, ``bench_bug_in_ear.py`` and
``bench_recording.py`` (imported as ``benchlib``: the scripts' folder is on
``sys.path`` when one of them runs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import logging
import os
import platform
import random
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import av  # noqa: E402
import numpy as np  # noqa: E402
from aiortc import RTCPeerConnection  # noqa: E402
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402
from aiortc.rtp import RtpPacket  # noqa: E402

from server.media.aiortc_adapter import tap_receiver  # noqa: E402
from testkit.procs import dies_with_parent  # noqa: E402

#: the server secret of the benchmarks that do not pick their own
BENCH_SECRET = "bench-secret-" + "s" * 40
CLK_TCK = os.sysconf("SC_CLK_TCK")

#: the pre-encoded VP8 clip (see ``make_video_clip``)
VIDEO_CLOCK = 90_000
FPS = 30
TS_STEP = VIDEO_CLOCK // FPS
TS_JITTER = 600
GOP_S = 2  # -g 60 at 30 fps

#: the pre-encoded Opus clip (see ``make_opus_clip``)
OPUS_CLIP_SECONDS = 60
OPUS_FRAME_S = 0.020
OPUS_CLOCK = 48_000
OPUS_FRAME_TICKS = 960


# ---------------------------------------------------------------- clips ----


def cached_ffmpeg(path: Path, args: list[str]) -> Path:
    """``path``, made once by ``ffmpeg <args> <tmp>`` (and renamed into place)
    unless a non-empty file is already there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size > 0:
        return path
    tmp = path.with_suffix(f".{os.getpid()}.tmp{path.suffix}")
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args, str(tmp)]
    subprocess.run(cmd, check=True, timeout=120)
    os.replace(tmp, path)
    return path


def make_video_clip(cache_dir: Path, seconds: int) -> Path:
    """A pre-encoded VP8 clip, 640x480 @ 30 fps, ~1 Mbit/s, keyframe every 2 s.

    testsrc2 with light temporal noise: plain ``testsrc`` compresses so well
    that libvpx stays near 0.55 Mbit/s even when asked for 1 Mbit/s. One
    extra GOP is encoded and dropped by ``load_video_clip``: libvpx makes its
    very first keyframe ~175 kB (a 1.4 Mbit burst), later ones are ~20 kB.
    """
    return cached_ffmpeg(
        cache_dir / f"vp8-640x480-30fps-1M-g60-{seconds}s-v2.webm",
        [
            "-f", "lavfi", "-i", f"testsrc2=size=640x480:rate={FPS}",
            "-vf", "noise=alls=12:allf=t", "-t", str(seconds + GOP_S),
            "-c:v", "libvpx", "-b:v", "1M",
            "-g", "60", "-deadline", "realtime", "-cpu-used", "8",
        ],
    )  # fmt: skip


def load_video_clip(path: Path) -> list[bytes]:
    """The clip's VP8 frames from its second keyframe on (see ``make_video_clip``)."""
    frames: list[bytes] = []
    keyframes = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.size:
                keyframes += bool(packet.is_keyframe)
                if keyframes >= 2:
                    frames.append(bytes(packet))
    if not frames:
        raise RuntimeError(f"no video frames in {path}")
    return frames


def make_opus_clip(cache_dir: Path) -> Path:
    """A pre-encoded Opus clip: 1 kHz tone + light noise (so every 20 ms
    payload is distinct and packets can be matched by payload), 48 kHz mono,
    32 kbit/s, 20 ms frames. Made once with ffmpeg and cached."""
    return cached_ffmpeg(
        cache_dir / f"whisper-tone-noise-opus32k-20ms-{OPUS_CLIP_SECONDS}s.ogg",
        [
            "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
            "-f", "lavfi", "-i", "anoisesrc=sample_rate=48000:amplitude=0.05:seed=7",
            "-filter_complex", "[0][1]amix=inputs=2", "-t", str(OPUS_CLIP_SECONDS), "-ac", "1",
            "-c:a", "libopus", "-b:a", "32k", "-frame_duration", "20",
        ],
    )  # fmt: skip


def load_opus_clip(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        packets = [bytes(p) for p in container.demux(stream) if p.size]
    if not packets:
        raise RuntimeError(f"no Opus packets in {path}")
    return packets


def clip_kbps(packets: list[bytes], packet_s: float) -> float:
    """Payload bit rate of a clip of ``packets`` sent one per ``packet_s``."""
    return sum(map(len, packets)) * 8 / (len(packets) * packet_s) / 1000


class PacedPacketTrack(MediaStreamTrack):
    """Sends pre-encoded packets as ``av.Packet`` objects (which aiortc's
    sender packetizes without encoding), one per ``period_s``.

    If the event loop was more than 250 ms late, the pacing restarts from now
    (counted in ``stalls``) instead of bursting to catch up. (aiortc's
    ``MediaPlayer(path, decode=False, loop=True)`` is not used: after its
    first loop the pts restart at 0, so its throttling stops and it bursts
    the clip as fast as it can demux it.)
    """

    def __init__(self, period_s: float, clock_rate: int) -> None:
        super().__init__()
        self._period_s = period_s
        self._n = 0
        self._t0: float | None = None
        self._time_base = fractions.Fraction(1, clock_rate)
        self.stalls = 0

    def next_packet(self, n: int) -> tuple[bytes, int]:
        """The ``n``-th packet to send and its pts."""
        raise NotImplementedError

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        else:
            wait = self._t0 + self._n * self._period_s - now
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.25:  # the loop stalled: do not burst to catch up
                self.stalls += 1
                self._t0 = now - self._n * self._period_s
        data, pts = self.next_packet(self._n)
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = self._time_base
        self._n += 1
        return packet


class VideoClipTrack(PacedPacketTrack):
    """Loops the pre-encoded VP8 clip at 30 fps.

    The pts (90 kHz) advance by 3000 +/- ``TS_JITTER`` ticks, so the sequence
    of RTP timestamps is a fingerprint that survives decode + re-encode.
    """

    kind = "video"

    def __init__(self, frames: list[bytes], seed: int = 7) -> None:
        super().__init__(1 / FPS, VIDEO_CLOCK)
        self._frames = frames
        self._rng = random.Random(seed)
        self._pts = 0

    def next_packet(self, n: int) -> tuple[bytes, int]:
        pts = self._pts
        self._pts += TS_STEP + self._rng.randint(-TS_JITTER, TS_JITTER)
        return self._frames[n % len(self._frames)], pts


class OpusClipTrack(PacedPacketTrack):
    """Loops the pre-encoded Opus packets, one per 20 ms, from ``start`` on."""

    kind = "audio"

    def __init__(self, packets: list[bytes], start: int) -> None:
        super().__init__(OPUS_FRAME_S, OPUS_CLOCK)
        self._packets = packets
        self._start_index = start

    def next_packet(self, n: int) -> tuple[bytes, int]:
        return self._packets[(self._start_index + n) % len(self._packets)], n * OPUS_FRAME_TICKS


# --------------------------------------------------------------- probes ----


def rtp_payload_offset(data: bytes) -> int:
    offset = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    return offset


def on_rtp_sent(dtls: Any, callback: Callable[[bytes], None]) -> None:
    """Call ``callback(data)`` for every RTP (not RTCP) packet the
    ``RTCDtlsTransport`` ``dtls`` sends, on entry to its ``_send_rtp``
    (before SRTP protect)."""
    original = dtls._send_rtp

    async def send_rtp(data: bytes) -> None:
        if not 192 <= data[1] <= 223:  # not RTCP
            callback(data)
        await original(data)

    dtls._send_rtp = send_rtp


def ignore_sender_report(ssrc: int, ntp: int, rtp: int) -> None:
    pass


def tap_new_tracks(
    pc: RTCPeerConnection,
    kind: str,
    on_packet: Callable[[RtpPacket, Any], None],
    on_sender_report: Callable[[int, int, int], None] = ignore_sender_report,
) -> None:
    """Tap every ``kind`` receiver of ``pc`` as soon as its remote track appears."""

    def on_track(track: MediaStreamTrack) -> None:
        for transceiver in pc.getTransceivers():
            if transceiver.receiver.track is track and track.kind == kind:
                tap_receiver(transceiver.receiver, on_packet, on_sender_report)

    pc.on("track", on_track)


@dataclass
class SubscriberProbe:
    """Counts and time-stamps packets at a tapped receiver (no decoding)."""

    name: str
    packets: int = 0
    payload_bytes: int = 0
    recording: bool = False
    arrivals: list[tuple[int, int, float]] = field(default_factory=list)  # hash, ts, t
    _seen: set[int] = field(default_factory=set)
    offset: int | None = None  # baseline: subscriber ts - publisher ts

    def on_packet(self, packet: RtpPacket, codec: Any, rid: str | None = None) -> None:
        t = time.monotonic()
        self.packets += 1
        self.payload_bytes += len(packet.payload)
        if self.recording and packet.sequence_number not in self._seen:
            self._seen.add(packet.sequence_number)  # ignore retransmissions
            self.arrivals.append((hash(packet.payload), packet.timestamp, t))

    def start_window(self) -> None:
        self.arrivals = []
        self._seen = set()
        self.recording = True

    def stop_window(self) -> None:
        self.recording = False


# ------------------------------------------------------- server process ----


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sidecoach_serve_args(port: int, data_dir: Path, ice_ip: str = "127.0.0.1") -> list[str]:
    """``server`` CLI arguments: serve on 127.0.0.1:``port``, ICE on
    ``ice_ip`` only (loopback unless told)."""
    level = os.environ.get("BENCH_SERVER_LOG_LEVEL", "WARNING")  # INFO to see what failed
    return [
        "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir),
        "--ice-listen-ips", ice_ip, "--log-level", level,
    ]  # fmt: skip


def sidecoach_env(secret: str) -> dict[str, str]:
    """This process's environment without any SIDECOACH_ setting but ``secret``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECOACH_")}
    env["SIDECOACH_SECRET"] = secret
    return env


class ServerProcess:
    """A server this bench starts (and stops, by PID), answering ``GET
    {url}{health_path}`` once it is up."""

    health_path = "/healthz"

    def __init__(
        self,
        name: str,
        cmd: list[str],
        env: dict[str, str],
        log_path: Path,
        url: str,
        stop_timeout: float = 5,
    ) -> None:
        self.name = name
        self.cmd = cmd
        self.env = env
        self.log_path = log_path
        self.url = url
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 30) -> None:
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            dies_with_parent(self.cmd), cwd=ROOT, env=self.env, stdout=self._log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(self.url + self.health_path) as resp:
                        if resp.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not healthy in {timeout}s:\n{self.log_tail()}")
                await asyncio.sleep(0.1)

    def log_tail(self, n: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-n:]
        return ""

    def stop(self) -> None:
        """Terminate (then kill) the process this bench started, by PID."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if getattr(self, "_log", None) is not None:
            self._log.close()


def sidecoach_server(
    data_dir: Path, log_path: Path, secret: str, ice_ip: str = "127.0.0.1"
) -> ServerProcess:
    """``python -m server serve`` on a free loopback port (not started yet)."""
    port = free_port()
    cmd = [sys.executable, "-m", "server", *sidecoach_serve_args(port, data_dir, ice_ip)]
    url = f"http://127.0.0.1:{port}"
    return ServerProcess("sidecoach", cmd, sidecoach_env(secret), log_path, url)


# ---------------------------------------------------- sessions, invites ----


def admin_client(secret: str, ttl_s: int, timeout_s: float) -> aiohttp.ClientSession:
    """An HTTP client sending an admin token of ``secret`` with every request."""
    from server.core.tokens import issue_admin_token

    token = issue_admin_token(secret, ttl_s=ttl_s)
    return aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {token}"},
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    )


async def create_session(
    http: aiohttp.ClientSession, url: str, title: str, teacher_name: str, recording: bool
) -> str:
    """A new session, through the admin HTTP API (``http`` from ``admin_client``)."""
    body = {"title": title, "teacher_name": teacher_name, "settings": {"recording": recording}}
    async with http.post(f"{url}/api/sessions", json=body) as resp:
        if resp.status not in (200, 201):
            raise RuntimeError(f"POST /api/sessions: HTTP {resp.status}: {await resp.text()}")
        reply: dict[str, Any] = await resp.json()
    return str(reply["session"]["id"])


def invite(secret: str, session_id: str, role: str) -> str:
    """An invite token to ``session_id`` as ``role``, valid for an hour."""
    from server.core.roles import Role
    from server.core.tokens import issue_invite

    return issue_invite(secret, session_id, Role(role), ttl_s=3600)


# -------------------------------------------------------------- waiting ----


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        await asyncio.sleep(0.05)


async def close_all(closing: Iterable[Awaitable[Any]], timeout: float = 10) -> None:
    """Await every one of ``closing`` (at most ``timeout`` s), ignoring errors."""
    with contextlib.suppress(Exception, asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), timeout)


# ------------------------------------------------------------------ CPU ----


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        stat = fh.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu_ns(pid: int) -> dict[int, int]:
    """CPU time of each live thread of process ``pid``, ns (schedstat: exact,
    where ``/proc/<pid>/stat`` counts 10 ms ticks)."""
    out: dict[int, int] = {}
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with (
                contextlib.suppress(OSError, ValueError, IndexError),
                open(f"/proc/{pid}/task/{tid}/schedstat") as fh,
            ):
                out[int(tid)] = int(fh.read().split()[0])
    return out


def exact_cpu_seconds(before: dict[int, int], after: dict[int, int]) -> float | None:
    """CPU seconds between two ``thread_cpu_ns`` readings; None if a thread
    ended in between (its time is gone: use ``cpu_seconds`` instead)."""
    if any(tid not in after for tid in before):
        return None
    return sum(ns - before.get(tid, 0) for tid, ns in after.items()) / 1e9


def machine_busy_seconds() -> float:
    """CPU time spent by all processes on the machine (all cores), seconds."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds used so far by the server, this bench process and the
    whole machine (read in that order, after the time)."""

    t: float
    server: float
    bench: float
    machine: float

    @classmethod
    def take(cls, server_pid: int) -> CpuReading:
        return cls(
            t=time.monotonic(),
            server=cpu_seconds(server_pid),
            bench=cpu_seconds(os.getpid()),
            machine=machine_busy_seconds(),
        )

    def others_since(self, before: CpuReading) -> float:
        """CPU seconds of every other process on the machine since ``before``."""
        server, bench = self.server - before.server, self.bench - before.bench
        return max(0.0, (self.machine - before.machine) - server - bench)


# ----------------------------------------------------------- statistics ----


def percentile(values: Any, q: float, digits: int = 3) -> float | None:
    """The ``q``-th percentile of ``values``, rounded; None if there are none."""
    return round(float(np.percentile(values, q)), digits) if len(values) else None


# ------------------------------------------------- command line, report ----


def add_quick_and_json_args(parser: argparse.ArgumentParser, quick_help: str) -> None:
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", metavar="PATH", help="write all numbers to PATH")


def add_cache_and_verbose_args(parser: argparse.ArgumentParser, cache_help: str) -> None:
    parser.add_argument(
        "--cache-dir",
        default=os.environ.get("SIDECOACH_BENCH_CACHE")
        or str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sidecoach-bench"),
        help=cache_help,
    )
    parser.add_argument("-v", "--verbose", action="store_true")


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
    )
    for noisy in ("aioice", "aiortc", "socketio", "engineio"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def machine_info() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run_and_report(
    args: argparse.Namespace,
    bench: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]],
    render: Callable[[dict[str, Any]], str],
) -> dict[str, Any]:
    """Run ``bench(args)``, print ``render(report)`` and write the report to
    ``args.json`` if given; return the report."""
    report = asyncio.run(bench(args))
    print(render(report), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


def fmt(v: Any, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def fmt_p50_p99(level: dict[str, Any], key: str, spec: str) -> str:
    """``level[key_p50] / level[key_p99]``, formatted."""
    return f"{fmt(level.get(key + '_p50'), spec)} / {fmt(level.get(key + '_p99'), spec)}"
