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
import logging
import os
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent)]  # benchlib; the server package

import aiohttp  # noqa: E402
import benchlib  # noqa: E402
import numpy as np  # noqa: E402
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.mediastreams import MediaStreamTrack  # noqa: E402
from benchlib import BENCH_SECRET, ROOT, SubscriberProbe, close_all, fmt, fmt_p50_p99  # noqa: E402

from server.media.aiortc_adapter import prefer_codec, restrict_ice, tap_receiver  # noqa: E402

LOOPBACK = ("127.0.0.1",)
LEVELS = (1, 2, 4, 8, 16)
QUICK_LEVELS = (1, 2)
TS_SLACK = 2  # ticks; << benchlib.TS_STEP - TS_JITTER, so matching stays unambiguous

REFERENCE_PCT_PER_SUBSCRIBER = {
    "aiortc MediaRelay (decode + re-encode)": 8.0,
    "Janus": 0.23,
    "encoded-frame forwarder on aiortc": 0.30,
    "Python floor (SRTP + sendto)": 0.05,
}

log = logging.getLogger("bench")


# ---------------------------------------------------------------- probes ----


class PublisherProbe:
    """Time-stamps every RTP packet the publisher writes (before SRTP)."""

    def __init__(self) -> None:
        self.packet_sent: dict[int, float] = {}  # hash(payload) -> first send
        self.frame_sent: dict[int, float] = {}  # RTP timestamp -> first packet
        self.packets = 0
        self.payload_bytes = 0

    def install(self, dtls: Any) -> None:
        benchlib.on_rtp_sent(dtls, self._on_rtp)

    def _on_rtp(self, data: bytes) -> None:
        t = time.monotonic()
        payload = data[benchlib.rtp_payload_offset(data) :]
        self.packets += 1
        self.payload_bytes += len(payload)
        self.packet_sent.setdefault(hash(payload), t)
        self.frame_sent.setdefault(struct.unpack_from("!I", data, 4)[0], t)


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


class Target:
    """One server under test plus the bench's clients for it."""

    name: str
    latency_unit: str
    server: benchlib.ServerProcess

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
        from server.storage.lessons import open_lessons
        from server.storage.sessions import SessionSettings

        data_dir = workdir / "sidecoach-data"
        data_dir.mkdir()
        store = await open_lessons(data_dir)
        try:
            record = await store.create(
                title="bench", teacher_name="Bench Teacher",
                settings=SessionSettings(recording=False),
            )  # fmt: skip
        finally:
            await store.close()
        self._invite: Callable[[str], str] = lambda role: benchlib.invite(
            BENCH_SECRET, record.id, role
        )
        self.server = benchlib.sidecoach_server(data_dir, workdir / "sidecoach.log", BENCH_SECRET)
        self.url = self.server.url
        await self.server.start()

    async def add_publisher(self, track: MediaStreamTrack, probe: PublisherProbe) -> None:
        from testkit.peers import Participant, wait_for

        teacher = Participant(self.url, self._invite("teacher"), decode=False)
        self.clients.append(teacher)
        await teacher.join("bench publisher")
        producer_id = await teacher.publish(track, "camera")
        await wait_for(lambda: teacher.published(producer_id), timeout=20)
        senders = [t.sender for t in teacher.pc.getTransceivers() if t.sender.track is track]
        probe.install(senders[0].transport)

    async def add_subscriber(self, probe: SubscriberProbe) -> None:
        from testkit.peers import Participant

        viewer = Participant(self.url, self._invite("observer"), decode=False)
        self.clients.append(viewer)
        benchlib.tap_new_tracks(viewer.pc, "video", probe.on_packet)
        await viewer.join(probe.name)

    async def close(self) -> None:
        await close_all(c.close() for c in self.clients)

    def latencies(self, probe: SubscriberProbe, pub: PublisherProbe) -> tuple[list[float], int]:
        return packet_latencies(probe, pub)


class BaselineTarget(Target):
    name = "baseline"
    latency_unit = "frame"

    def __init__(self) -> None:
        self.pcs: list[RTCPeerConnection] = []

    async def start(self, workdir: Path) -> None:
        port = benchlib.free_port()
        self.url = f"http://127.0.0.1:{port}"
        cmd = [
            sys.executable, str(ROOT / "scripts" / "bench_baseline_relay.py"),
            "--host", "127.0.0.1", "--port", str(port), "--ice-listen-ips", "127.0.0.1",
        ]  # fmt: skip
        log_path = workdir / "baseline.log"
        self.server = benchlib.ServerProcess(self.name, cmd, dict(os.environ), log_path, self.url)
        await self.server.start()

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
        tap_receiver(transceiver.receiver, probe.on_packet, benchlib.ignore_sender_report)
        await self._negotiate(pc, "/subscribe")

    async def close(self) -> None:
        await close_all(pc.close() for pc in self.pcs)

    def latencies(self, probe: SubscriberProbe, pub: PublisherProbe) -> tuple[list[float], int]:
        return frame_latencies(probe, pub)


# ------------------------------------------------------------- measuring ----


@dataclass
class Settings:
    levels: tuple[int, ...]
    window_s: float
    warmup_s: float
    clip_s: int
    connect_timeout_s: float = 30.0


async def run_target(
    target: Target, frames: list[bytes], settings: Settings, workdir: Path
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "server": target.name,
        "latency_unit": target.latency_unit,
        "levels": [],
    }
    track = benchlib.VideoClipTrack(frames)
    pub = PublisherProbe()
    subs: list[SubscriberProbe] = []
    try:
        await target.start(workdir)
        pid = target.server.pid
        result["pid"] = pid
        await asyncio.wait_for(target.add_publisher(track, pub), settings.connect_timeout_s)
        await benchlib.wait_until(
            lambda: pub.packets >= 10, settings.connect_timeout_s, "publisher sending"
        )
        for n in settings.levels:
            while len(subs) < n:
                probe = SubscriberProbe(f"sub{len(subs) + 1}")
                subs.append(probe)
                await asyncio.wait_for(target.add_subscriber(probe), settings.connect_timeout_s)
            await benchlib.wait_until(
                lambda: all(s.packets > 0 for s in subs),
                settings.connect_timeout_s,
                f"{target.name}: all {n} subscribers receiving",
            )
            await asyncio.sleep(settings.warmup_s)
            for s in subs:
                s.start_window()
            before = [(s.packets, s.payload_bytes) for s in subs]
            pub_before = pub.packets
            r0 = benchlib.CpuReading.take(pid)
            await asyncio.sleep(settings.window_s)
            r1 = benchlib.CpuReading.take(pid)
            for s in subs:
                s.stop_window()
            elapsed = r1.t - r0.t
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
                "server_cpu_pct": round((r1.server - r0.server) / elapsed * 100, 2),
                "bench_process_cpu_pct": round((r1.bench - r0.bench) / elapsed * 100, 2),
                "latency_ms_p50": benchlib.percentile(latencies, 50),
                "latency_ms_p99": benchlib.percentile(latencies, 99),
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
        lines.append(
            f"{n:>3} | {fmt(a.get('server_cpu_pct')):>15} | {fmt(b.get('server_cpu_pct')):>14} | "
            f"{fmt_p50_p99(a, 'latency_ms', '.2f'):>20} | "
            f"{fmt_p50_p99(b, 'latency_ms', '.2f'):>19} | "
            f"{fmt(a.get('subscriber_payload_kbps_mean'), '.0f'):>6} / "
            f"{fmt(b.get('subscriber_payload_kbps_mean'), '.0f'):<6}"
        )
    s_slope = servers.get("sidecoach", {}).get("slope_pct_per_subscriber")
    b_slope = servers.get("baseline", {}).get("slope_pct_per_subscriber")
    ratio = report.get("ratio_baseline_over_sidecoach")
    lines += [
        "",
        "Slope (% of a core per added subscriber, least squares over N): "
        f"Sidecoach {fmt(s_slope, '.3f')}, baseline {fmt(b_slope, '.3f')}, "
        f"ratio baseline/Sidecoach {fmt(ratio, '.1f')}",
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
    clip = benchlib.make_video_clip(Path(args.cache_dir), settings.clip_s)
    frames = benchlib.load_video_clip(clip)
    clip_kbps = benchlib.clip_kbps(frames, 1 / benchlib.FPS)
    report: dict[str, Any] = {
        "settings": {
            "levels": list(settings.levels),
            "window_s": settings.window_s,
            "warmup_s": settings.warmup_s,
            "clip": str(clip),
            "clip_frames": len(frames),
            "clip_payload_kbps": round(clip_kbps, 1),
        },
        "machine": benchlib.machine_info(),
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
    benchlib.add_quick_and_json_args(parser, "N=1,2 with short windows (smoke test)")
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--window", type=float, default=None, help="CPU/latency window, s (8)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up per level, s (3)")
    parser.add_argument("--clip-seconds", type=int, default=None, help="clip length, s (20)")
    parser.add_argument(
        "--servers", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        default=["sidecoach", "baseline"], help="comma list: sidecoach,baseline",
    )  # fmt: skip
    benchlib.add_cache_and_verbose_args(parser, "where the encoded clip is kept")
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
    benchlib.configure_logging(args.verbose)
    report = benchlib.run_and_report(args, bench, render)
    ok = all(not r.get("error") for r in report["servers"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
