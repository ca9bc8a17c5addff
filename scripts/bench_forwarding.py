"""Forwarding benchmark: Sidecoach's packet forwarder vs a MediaRelay baseline.

One publisher sends pre-encoded VP8 (640x480, 30 fps, ~1 Mbit/s; made once
with ffmpeg and cached, so the publisher never encodes) to N = 1, 2, 4, 8, 16
subscribers that never decode (their receivers are tapped with
``server.media.aiortc_adapter.tap_receiver``: packets are counted and
time-stamped before aiortc's jitter buffer and decoder). Two servers are
measured in the same run, each in its own process:

* **Sidecoach** (``python -m server serve``): forwards RTP packets, rewriting
  only SSRC / sequence number / timestamp; the payload is byte-identical.
* **baseline** (``scripts/bench_baseline_relay.py``): aiortc's ``MediaRelay``,
  decoding once and re-encoding VP8 once per subscriber.

Measured, at each N, after a warm-up:

1. **Server CPU**: utime+stime of the server process (all its threads) from
   ``/proc/<pid>/stat`` over a fixed window, as % of one core; and the slope
   (% of a core per added subscriber, least squares over N).
2. **Latency**: publisher send -> subscriber receive, on loopback, in this
   one process (one monotonic clock). The publisher side is stamped when a
   packet enters the publisher's ``RTCDtlsTransport._send_rtp`` (before SRTP
   protect), the subscriber side when the tap sees it (after SRTP unprotect
   and RTP parse, before any jitter buffer). So it includes both clients'
   SRTP work, the kernel's loopback, the server's work, and any time packets
   wait for the (shared, single-threaded) event loop of this bench process.
   Nothing is subtracted.
   Sidecoach: every packet, matched by a hash of its payload (forwarded
   byte-identical). Baseline (re-encodes): every frame, first packet of the
   frame, matched by RTP timestamp: aiortc's decoder keeps the publisher's
   RTP timestamp as the frame pts and the encoder adds a random per-sender
   origin, so subscriber ts = publisher ts + C; the publisher's frame
   timestamps carry random jitter (3000 +/- 600 ticks per frame) so C is
   found unambiguously by matching the sequences.

Reference numbers (% of one core per added subscriber, forwarding one
~1 Mbit/s video): aiortc MediaRelay (decode + re-encode) ~ 8 %; Janus ~ 0.23 %;
an encoded-frame forwarder on aiortc ~ 0.30 %; the Python floor (SRTP protect
+ sendto per packet) ~ 0.05 %.

All traffic stays on 127.0.0.1: ICE is restricted to loopback on both sides
and no STUN/TURN server is configured anywhere (``iceServers=[]``). The
servers the bench starts are killed by PID when it ends.

Usage::

    .venv/bin/python scripts/bench_forwarding.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fractions
import json
import logging
import os
import platform
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import av  # noqa: E402
import numpy as np  # noqa: E402
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402
from aiortc.rtp import RtpPacket  # noqa: E402

from server.media.aiortc_adapter import prefer_codec, restrict_ice, tap_receiver  # noqa: E402

LOOPBACK = ("127.0.0.1",)
LEVELS = (1, 2, 4, 8, 16)
QUICK_LEVELS = (1, 2)
BENCH_SECRET = "bench-secret-" + "s" * 40
VIDEO_CLOCK = 90_000
FPS = 30
TS_STEP = VIDEO_CLOCK // FPS
TS_JITTER = 600
TS_SLACK = 2  # ticks; << TS_STEP - TS_JITTER, so matching stays unambiguous
GOP_S = 2  # -g 60 at 30 fps
CLK_TCK = os.sysconf("SC_CLK_TCK")

REFERENCE_PCT_PER_SUBSCRIBER = {
    "aiortc MediaRelay (decode + re-encode)": 8.0,
    "Janus": 0.23,
    "encoded-frame forwarder on aiortc": 0.30,
    "Python floor (SRTP + sendto)": 0.05,
}

log = logging.getLogger("bench")


# ------------------------------------------------------------------ clip ----


def make_clip(cache_dir: Path, seconds: int) -> Path:
    """A pre-encoded VP8 clip, 640x480 @ 30 fps, ~1 Mbit/s, keyframe every 2 s.

    testsrc2 with light temporal noise: plain ``testsrc`` compresses so well
    that libvpx stays near 0.55 Mbit/s even when asked for 1 Mbit/s. One
    extra GOP is encoded and dropped by ``load_clip``: libvpx makes its very
    first keyframe ~175 kB (a 1.4 Mbit burst), later ones are ~20 kB.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"vp8-640x480-30fps-1M-g60-{seconds}s-v2.webm"
    if path.exists() and path.stat().st_size > 0:
        return path
    tmp = path.with_suffix(f".{os.getpid()}.tmp.webm")
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size=640x480:rate={FPS}",
        "-vf", "noise=alls=12:allf=t", "-t", str(seconds + GOP_S),
        "-c:v", "libvpx", "-b:v", "1M",
        "-g", "60", "-deadline", "realtime", "-cpu-used", "8", str(tmp),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, timeout=120)
    os.replace(tmp, path)
    return path


def load_clip(path: Path) -> list[bytes]:
    """The clip's VP8 frames from its second keyframe on (see ``make_clip``)."""
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


class ClipTrack(MediaStreamTrack):  # type: ignore[misc]
    """Loops the pre-encoded clip at 30 fps as ``av.Packet`` objects, which
    aiortc's sender packetizes without encoding.

    (``MediaPlayer(path, decode=False, loop=True)`` is not used: after its
    first loop the pts restart at 0, so its throttling stops and it bursts
    the clip as fast as it can demux it.)

    The pts (90 kHz) advance by 3000 +/- ``TS_JITTER`` ticks, so the sequence
    of RTP timestamps is a fingerprint that survives decode + re-encode.
    """

    kind = "video"

    def __init__(self, frames: list[bytes], seed: int = 7) -> None:
        super().__init__()
        self._frames = frames
        self._rng = random.Random(seed)
        self._index = 0
        self._pts = 0
        self._start: float | None = None
        self._time_base = fractions.Fraction(1, VIDEO_CLOCK)

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            wait = self._start + self._index / FPS - now
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.25:  # stalled: do not burst to catch up
                self._start = now - self._index / FPS
        packet = av.Packet(self._frames[self._index % len(self._frames)])
        packet.pts = self._pts
        packet.time_base = self._time_base
        self._index += 1
        self._pts += TS_STEP + self._rng.randint(-TS_JITTER, TS_JITTER)
        return packet


# ---------------------------------------------------------------- probes ----


def _rtp_payload_offset(data: bytes) -> int:
    offset = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    return offset


class PublisherProbe:
    """Time-stamps every RTP packet the publisher writes (before SRTP)."""

    def __init__(self) -> None:
        self.packet_sent: dict[int, float] = {}  # hash(payload) -> first send
        self.frame_sent: dict[int, float] = {}  # RTP timestamp -> first packet
        self.packets = 0
        self.payload_bytes = 0

    def install(self, dtls: Any) -> None:
        original = dtls._send_rtp

        async def send_rtp(data: bytes) -> None:
            if not 192 <= data[1] <= 223:  # not RTCP
                t = time.monotonic()
                payload = data[_rtp_payload_offset(data) :]
                self.packets += 1
                self.payload_bytes += len(payload)
                self.packet_sent.setdefault(hash(payload), t)
                self.frame_sent.setdefault(struct.unpack_from("!I", data, 4)[0], t)
            await original(data)

        dtls._send_rtp = send_rtp


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

    def on_packet(self, packet: RtpPacket, codec: Any) -> None:
        t = time.monotonic()
        self.packets += 1
        self.payload_bytes += len(packet.payload)
        if self.recording and packet.sequence_number not in self._seen:
            self._seen.add(packet.sequence_number)  # ignore retransmissions
            self.arrivals.append((hash(packet.payload), packet.timestamp, t))

    def on_sender_report(self, ssrc: int, ntp: int, rtp: int) -> None:
        pass

    def start_window(self) -> None:
        self.arrivals = []
        self._seen = set()
        self.recording = True

    def stop_window(self) -> None:
        self.recording = False


def tap_new_tracks(pc: RTCPeerConnection, probe: SubscriberProbe) -> None:
    """Tap every receiver of ``pc`` as soon as its remote track appears."""

    def on_track(track: MediaStreamTrack) -> None:
        for transceiver in pc.getTransceivers():
            if transceiver.receiver.track is track and track.kind == "video":
                tap_receiver(transceiver.receiver, probe.on_packet, probe.on_sender_report)

    pc.on("track", on_track)


def packet_latencies(probe: SubscriberProbe, pub: PublisherProbe) -> tuple[list[float], int]:
    """Per packet, matched by payload hash (forwarding servers)."""
    out, unmatched = [], 0
    for h, _ts, t in probe.arrivals:
        sent = pub.packet_sent.get(h)
        if sent is None:
            unmatched += 1
        else:
            out.append((t - sent) * 1000)
    return out, unmatched


def first_packets(probe: SubscriberProbe) -> list[tuple[int, float]]:
    seen: set[int] = set()
    frames = []
    for _h, ts, t in probe.arrivals:
        if ts not in seen:
            seen.add(ts)
            frames.append((ts, t))
    return frames


def _lookup(frame_sent: dict[int, float], ts: int) -> float | None:
    """Send time of publisher frame ``ts``, allowing +/- ``TS_SLACK`` ticks:
    aiortc's pts -> RTP timestamp conversion after decoding can be off by one."""
    for d in (0, -1, 1, -2, 2)[: 2 * TS_SLACK + 1]:
        sent = frame_sent.get((ts + d) & 0xFFFFFFFF)
        if sent is not None:
            return sent
    return None


def estimate_offset(frames: list[tuple[int, float]], pub: PublisherProbe) -> int | None:
    """C with subscriber ts = publisher ts + C (mod 2**32), or None."""
    sample = frames[:60]
    best, best_score = None, 0
    for s, t_arr in sample[:5]:
        for p, t_sent in pub.frame_sent.items():
            if not t_arr - 3.0 <= t_sent <= t_arr:
                continue
            c = (s - p) & 0xFFFFFFFF
            score = sum(_lookup(pub.frame_sent, s2 - c) is not None for s2, _ in sample)
            if score > best_score:
                best, best_score = c, score
    if best is None or best_score < max(3, len(sample) // 2):
        return None
    return best


def frame_latencies(probe: SubscriberProbe, pub: PublisherProbe) -> tuple[list[float], int]:
    """Per frame (first packet), matched by RTP timestamp (re-encoding servers)."""
    frames = first_packets(probe)
    if probe.offset is None:
        probe.offset = estimate_offset(frames, pub)
    if probe.offset is None:
        return [], len(frames)
    out, unmatched = [], 0
    for ts, t in frames:
        sent = _lookup(pub.frame_sent, ts - probe.offset)
        if sent is None:
            unmatched += 1
        else:
            out.append((t - sent) * 1000)
    return out, unmatched


# --------------------------------------------------------------- servers ----


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child before exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        stat = fh.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class ServerProcess:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, health_url: str, timeout: float = 30) -> None:
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.cmd, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(health_url) as resp:
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
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if getattr(self, "_log", None) is not None:
            self._log.close()


class Target:
    """One server under test plus the bench's clients for it."""

    name: str
    latency_unit: str
    server: ServerProcess

    async def start(self, workdir: Path) -> None: ...
    async def add_publisher(self, track: MediaStreamTrack, probe: PublisherProbe) -> None: ...
    async def add_subscriber(self, probe: SubscriberProbe) -> None: ...
    async def close(self) -> None: ...

    def latencies(self, probe: SubscriberProbe, pub: PublisherProbe) -> tuple[list[float], int]:
        raise NotImplementedError


class SidecoachTarget(Target):
    name = "sidecoach"
    latency_unit = "packet"

    def __init__(self) -> None:
        self.clients: list[Any] = []

    async def start(self, workdir: Path) -> None:
        from server.roles import Role
        from server.store import DB_FILE_NAME, SessionSettings, SqliteSessionStore
        from server.tokens import issue_invite

        data_dir = workdir / "sidecoach-data"
        data_dir.mkdir()
        store = await SqliteSessionStore.open(data_dir / DB_FILE_NAME)
        try:
            record = await store.create(
                title="bench", teacher_name="Bench Teacher",
                settings=SessionSettings(recording=False),
            )  # fmt: skip
        finally:
            await store.close()
        self._invite: Callable[[str], str] = lambda role: issue_invite(
            BENCH_SECRET, record.id, Role(role), ttl_s=3600
        )
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECOACH_")}
        env["SIDECOACH_SECRET"] = BENCH_SECRET
        cmd = [
            sys.executable, "-m", "server", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(data_dir), "--ice-listen-ips", "127.0.0.1", "--log-level", "WARNING",
        ]  # fmt: skip
        self.server = ServerProcess(self.name, cmd, env, workdir / "sidecoach.log")
        await self.server.start(f"{self.url}/healthz")

    async def add_publisher(self, track: MediaStreamTrack, probe: PublisherProbe) -> None:
        from tests.peers import Participant, wait_for

        teacher = Participant(self.url, self._invite("teacher"), decode=False)
        self.clients.append(teacher)
        await teacher.join("bench publisher")
        producer_id = await teacher.publish(track, "camera")
        await wait_for(lambda: teacher.published(producer_id), timeout=20)
        senders = [t.sender for t in teacher.pc.getTransceivers() if t.sender.track is track]
        probe.install(senders[0].transport)

    async def add_subscriber(self, probe: SubscriberProbe) -> None:
        from tests.peers import Participant

        viewer = Participant(self.url, self._invite("observer"), decode=False)
        self.clients.append(viewer)
        tap_new_tracks(viewer.pc, probe)
        await viewer.join(probe.name)

    async def close(self) -> None:
        await _close_all([c.close() for c in self.clients])

    def latencies(self, probe: SubscriberProbe, pub: PublisherProbe) -> tuple[list[float], int]:
        return packet_latencies(probe, pub)


class BaselineTarget(Target):
    name = "baseline"
    latency_unit = "frame"

    def __init__(self) -> None:
        self.pcs: list[RTCPeerConnection] = []

    async def start(self, workdir: Path) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        cmd = [
            sys.executable, str(ROOT / "scripts" / "bench_baseline_relay.py"),
            "--host", "127.0.0.1", "--port", str(port), "--ice-listen-ips", "127.0.0.1",
        ]  # fmt: skip
        self.server = ServerProcess(self.name, cmd, dict(os.environ), workdir / "baseline.log")
        await self.server.start(f"{self.url}/healthz")

    async def _negotiate(self, pc: RTCPeerConnection, path: str) -> None:
        offer = await pc.createOffer()
        restrict_ice(pc, LOOPBACK, None)
        await pc.setLocalDescription(offer)
        timeout = aiohttp.ClientTimeout(total=20)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(self.url + path, json={"sdp": pc.localDescription.sdp}) as resp,
        ):
            if resp.status != 200:
                raise RuntimeError(f"{path}: HTTP {resp.status}: {await resp.text()}")
            answer = await resp.json()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))

    async def add_publisher(self, track: MediaStreamTrack, probe: PublisherProbe) -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pcs.append(pc)
        transceiver = pc.addTransceiver(track, direction="sendonly")
        prefer_codec(transceiver, "video/VP8", {})
        probe.install(transceiver.sender.transport)
        await self._negotiate(pc, "/publish")

    async def add_subscriber(self, probe: SubscriberProbe) -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pcs.append(pc)
        transceiver = pc.addTransceiver("video", direction="recvonly")
        prefer_codec(transceiver, "video/VP8", {})
        tap_receiver(transceiver.receiver, probe.on_packet, probe.on_sender_report)
        await self._negotiate(pc, "/subscribe")

    async def close(self) -> None:
        await _close_all([pc.close() for pc in self.pcs])

    def latencies(self, probe: SubscriberProbe, pub: PublisherProbe) -> tuple[list[float], int]:
        return frame_latencies(probe, pub)


async def _close_all(coros: list[Any]) -> None:
    with contextlib.suppress(Exception, asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.gather(*coros, return_exceptions=True), 10)


# ------------------------------------------------------------- measuring ----


@dataclass
class Settings:
    levels: tuple[int, ...]
    window_s: float
    warmup_s: float
    clip_s: int
    connect_timeout_s: float = 30.0


async def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        await asyncio.sleep(0.05)


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


async def run_target(
    target: Target, frames: list[bytes], settings: Settings, workdir: Path
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "server": target.name,
        "latency_unit": target.latency_unit,
        "levels": [],
    }
    track = ClipTrack(frames)
    pub = PublisherProbe()
    subs: list[SubscriberProbe] = []
    try:
        await target.start(workdir)
        pid = target.server.pid
        result["pid"] = pid
        await asyncio.wait_for(target.add_publisher(track, pub), settings.connect_timeout_s)
        await _wait(lambda: pub.packets >= 10, settings.connect_timeout_s, "publisher sending")
        for n in settings.levels:
            while len(subs) < n:
                probe = SubscriberProbe(f"sub{len(subs) + 1}")
                subs.append(probe)
                await asyncio.wait_for(target.add_subscriber(probe), settings.connect_timeout_s)
            await _wait(
                lambda: all(s.packets > 0 for s in subs),
                settings.connect_timeout_s,
                f"{target.name}: all {n} subscribers receiving",
            )
            await asyncio.sleep(settings.warmup_s)
            for s in subs:
                s.start_window()
            before = [(s.packets, s.payload_bytes) for s in subs]
            pub_before = pub.packets
            t0, c0, b0 = time.monotonic(), cpu_seconds(pid), cpu_seconds(os.getpid())
            await asyncio.sleep(settings.window_s)
            t1, c1, b1 = time.monotonic(), cpu_seconds(pid), cpu_seconds(os.getpid())
            for s in subs:
                s.stop_window()
            elapsed = t1 - t0
            latencies: list[float] = []
            unmatched = matched_subs = 0
            for s in subs:
                values, missing = target.latencies(s, pub)
                latencies.extend(values)
                unmatched += missing
                matched_subs += bool(values)
            received = [s.packets - p for s, (p, _) in zip(subs, before, strict=True)]
            kbps = [
                (s.payload_bytes - b) * 8 / elapsed / 1000
                for s, (_, b) in zip(subs, before, strict=True)
            ]
            level = {
                "n": n,
                "window_s": round(elapsed, 3),
                "server_cpu_pct": round((c1 - c0) / elapsed * 100, 2),
                "bench_process_cpu_pct": round((b1 - b0) / elapsed * 100, 2),
                "latency_ms_p50": _percentile(latencies, 50),
                "latency_ms_p99": _percentile(latencies, 99),
                "latency_samples": len(latencies),
                "latency_unmatched": unmatched,
                "subscribers_matched": matched_subs,
                "publisher_packets": pub.packets - pub_before,
                "subscriber_packets_min": min(received),
                "subscriber_packets_mean": round(sum(received) / n, 1),
                "subscriber_payload_kbps_mean": round(sum(kbps) / n, 1),
            }
            result["levels"].append(level)
            log.info("%s %s", target.name, level)
        result["slope_pct_per_subscriber"], result["intercept_pct"] = _fit(result["levels"])
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
    if "slope_pct_per_subscriber" not in result:
        result["slope_pct_per_subscriber"], result["intercept_pct"] = _fit(result["levels"])
    result["publisher_packets_total"] = pub.packets
    return result


def _fit(levels: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    if len(levels) < 2:
        return None, None
    x = np.array([lv["n"] for lv in levels], dtype=float)
    y = np.array([lv["server_cpu_pct"] for lv in levels], dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    return round(float(slope), 3), round(float(intercept), 2)


# -------------------------------------------------------------- reporting ----


def _fmt(v: Any, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def _pair(level: dict[str, Any], a: str, b: str, spec: str) -> str:
    return f"{_fmt(level.get(a), spec)} / {_fmt(level.get(b), spec)}"


def render(report: dict[str, Any]) -> str:
    servers = report["servers"]
    sc = {lv["n"]: lv for lv in servers.get("sidecoach", {}).get("levels", [])}
    bl = {lv["n"]: lv for lv in servers.get("baseline", {}).get("levels", [])}
    cpus, window = report["machine"]["cpus"], report["settings"]["window_s"]
    lines = [
        "Forwarding one ~1 Mbit/s VP8 30 fps publisher to N non-decoding subscribers "
        f"({cpus} CPUs, {window:g} s windows)",
        "CPU: server process utime+stime, % of one core.  Latency: publisher send -> "
        "subscriber receive on loopback, ms",
        "(Sidecoach: every packet, matched by payload; baseline: first packet of each frame, "
        "matched by RTP timestamp).",
        "",
        f"{'N':>3} | {'Sidecoach CPU %':>15} | {'baseline CPU %':>14} | "
        f"{'Sidecoach p50/p99 ms':>20} | {'baseline p50/p99 ms':>19} | {'rx kbit/s sc/bl':>15}",
        "-" * 101,
    ]
    for n in sorted(set(sc) | set(bl)):
        a, b = sc.get(n, {}), bl.get(n, {})
        lat = ("latency_ms_p50", "latency_ms_p99")
        lines.append(
            f"{n:>3} | {_fmt(a.get('server_cpu_pct')):>15} | {_fmt(b.get('server_cpu_pct')):>14} | "
            f"{_pair(a, *lat, '.2f'):>20} | {_pair(b, *lat, '.2f'):>19} | "
            f"{_fmt(a.get('subscriber_payload_kbps_mean'), '.0f'):>6} / "
            f"{_fmt(b.get('subscriber_payload_kbps_mean'), '.0f'):<6}"
        )
    s_slope = servers.get("sidecoach", {}).get("slope_pct_per_subscriber")
    b_slope = servers.get("baseline", {}).get("slope_pct_per_subscriber")
    ratio = report.get("ratio_baseline_over_sidecoach")
    lines += [
        "",
        "Slope (% of a core per added subscriber, least squares over N): "
        f"Sidecoach {_fmt(s_slope, '.3f')}, baseline {_fmt(b_slope, '.3f')}, "
        f"ratio baseline/Sidecoach {_fmt(ratio, '.1f')}",
        "Reference (% per added subscriber): "
        + "; ".join(f"{k} ~{v}" for k, v in REFERENCE_PCT_PER_SUBSCRIBER.items()),
        "Note: the baseline re-encodes at aiortc's default VP8 target (~500 kbit/s: the "
        "tapped receivers send no REMB), half the publisher's rate; its encoders run in "
        "threads, so it can use more than one core.",
    ]
    for name, res in servers.items():
        if res.get("error"):
            lines.append(f"!! {name} failed: {res['error']}")
    return "\n".join(lines)


# ------------------------------------------------------------------ main ----


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(
        levels=tuple(args.levels),
        window_s=args.window,
        warmup_s=args.warmup,
        clip_s=args.clip_seconds,
    )
    clip = make_clip(Path(args.cache_dir), settings.clip_s)
    frames = load_clip(clip)
    clip_kbps = sum(len(f) for f in frames) * 8 / (len(frames) / FPS) / 1000
    report: dict[str, Any] = {
        "settings": {
            "levels": list(settings.levels),
            "window_s": settings.window_s,
            "warmup_s": settings.warmup_s,
            "clip": str(clip),
            "clip_frames": len(frames),
            "clip_payload_kbps": round(clip_kbps, 1),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "reference_pct_per_subscriber": REFERENCE_PCT_PER_SUBSCRIBER,
        "latency_definition": (
            "publisher RTCDtlsTransport._send_rtp entry (before SRTP) -> subscriber tap "
            "(after SRTP unprotect + RTP parse, before jitter buffer); same process, "
            "time.monotonic(); loopback; nothing subtracted"
        ),
        "servers": {},
    }
    targets: dict[str, Callable[[], Target]] = {
        "sidecoach": SidecoachTarget,
        "baseline": BaselineTarget,
    }
    with tempfile.TemporaryDirectory(prefix="sidecoach-bench-") as tmp:
        for name in args.servers:
            workdir = Path(tmp) / name
            workdir.mkdir()
            budget = 60 + len(settings.levels) * (settings.window_s + settings.warmup_s + 40)
            try:
                result = await asyncio.wait_for(
                    run_target(targets[name](), frames, settings, workdir), budget
                )
            except TimeoutError:
                result = {"server": name, "levels": [], "error": f"timed out after {budget:.0f}s"}
            report["servers"][name] = result
    s = report["servers"].get("sidecoach", {}).get("slope_pct_per_subscriber")
    b = report["servers"].get("baseline", {}).get("slope_pct_per_subscriber")
    report["ratio_baseline_over_sidecoach"] = round(b / s, 2) if s and b and s > 0 else None
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="N=1,2 with short windows (smoke test)"
    )
    parser.add_argument("--json", metavar="PATH", help="write all numbers to PATH")
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--window", type=float, default=None, help="CPU/latency window, s (8)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up per level, s (3)")
    parser.add_argument("--clip-seconds", type=int, default=None, help="clip length, s (20)")
    parser.add_argument(
        "--servers", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        default=["sidecoach", "baseline"], help="comma list: sidecoach,baseline",
    )  # fmt: skip
    parser.add_argument(
        "--cache-dir",
        default=os.environ.get("SIDECOACH_BENCH_CACHE")
        or str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sidecoach-bench"),
        help="where the encoded clip is kept",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    quick = args.quick
    args.levels = args.levels or list(QUICK_LEVELS if quick else LEVELS)
    args.window = args.window or (2.0 if quick else 8.0)
    args.warmup = args.warmup or (1.0 if quick else 3.0)
    args.clip_seconds = args.clip_seconds or (4 if quick else 20)
    for name in args.servers:
        if name not in ("sidecoach", "baseline"):
            parser.error(f"unknown server {name!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
    )
    for noisy in ("aioice", "aiortc", "socketio", "engineio"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    report = asyncio.run(bench(args))
    print(render(report), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    ok = all(not r.get("error") for r in report["servers"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
