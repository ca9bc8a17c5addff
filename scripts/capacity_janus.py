"""The Janus reference of ``bench_capacity.py``: one session's shape (a
publisher sending the pre-encoded ~1 Mbit/s VP8 clip and Opus, three
subscribers that do not decode) on Debian's Janus (VideoRoom), measured
over a window like a capacity level, so the report can give Sidecoach's
CPU per session as a ratio to Janus's, from the same run.

Janus needs an ICE address that is not loopback: ``bench_capacity.py``
runs in a network namespace of its own with a veth address
(``benchjanus``); the clients here run in the bench process.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import benchjanus
import benchlib
from aiortc.rtp import RtpPacket

from server.media.aiortc_adapter import new_peer_connection, prefer_codec, tap_receiver

SUBSCRIBERS = 3
CONNECT_TIMEOUT_S = 30.0


class _Counter:
    def __init__(self) -> None:
        self.packets: dict[str, int] = {"audio": 0, "video": 0}

    def sink(self, kind: str) -> Any:
        def on_packet(packet: RtpPacket, codec: Any, rid: str | None = None) -> None:
            self.packets[kind] += 1

        return on_packet


async def janus_session(
    video: list[bytes], opus: list[bytes], window_s: float, warmup_s: float
) -> dict[str, Any]:
    """Janus's CPU (% of one core) for one session, over ``window_s``."""
    result: dict[str, Any] = {"subscribers": SUBSCRIBERS, "window_s": window_s}
    pcs: list[Any] = []
    tracks = [benchlib.VideoClipTrack(video), benchlib.OpusClipTrack(opus, start=0)]
    janus: benchjanus.JanusSession | None = None
    with tempfile.TemporaryDirectory(prefix="bench-capacity-janus-") as tmp:
        server = benchjanus.JanusProcess(Path(tmp), benchjanus.BENCH_IP)
        try:
            await server.start()
            janus = benchjanus.JanusSession(server.api)
            await janus.open()
            room = benchjanus.VideoRoom(janus, (benchjanus.BENCH_IP,))
            await room.create()
            pub = new_peer_connection()
            pcs.append(pub)
            for track, mime in zip(tracks, ("video/VP8", "audio/opus"), strict=True):
                prefer_codec(pub.addTransceiver(track, direction="sendonly"), mime, {})
            await asyncio.wait_for(room.publish(pub), CONNECT_TIMEOUT_S)
            counters = [_Counter() for _ in range(SUBSCRIBERS)]
            for counter in counters:
                pc = new_peer_connection()
                pcs.append(pc)

                def tap(pc: Any = pc, counter: _Counter = counter) -> None:
                    for t in pc.getTransceivers():
                        sink = counter.sink(t.kind)
                        tap_receiver(t.receiver, sink, benchlib.ignore_sender_report)

                await asyncio.wait_for(room.subscribe(pc, tap), CONNECT_TIMEOUT_S)
            await benchlib.wait_until(
                lambda: all(c.packets["video"] and c.packets["audio"] for c in counters),
                CONNECT_TIMEOUT_S, "janus subscribers receiving audio and video",
            )  # fmt: skip
            await asyncio.sleep(warmup_s)
            before = [dict(c.packets) for c in counters]
            t0, r0 = benchlib.thread_cpu_ns(server.pid), benchlib.CpuReading.take(server.pid)
            await asyncio.sleep(window_s)
            r1, t1 = benchlib.CpuReading.take(server.pid), benchlib.thread_cpu_ns(server.pid)
            exact = benchlib.exact_cpu_seconds(t0, t1)
            cpu_s = exact if exact is not None else r1.server - r0.server
            result["server_cpu_pct"] = round(100 * cpu_s / (r1.t - r0.t), 3)
            result["other_cpu_pct"] = round(100 * r1.others_since(r0) / (r1.t - r0.t), 1)
            result["video_packets_min"] = min(
                c.packets["video"] - b["video"] for c, b in zip(counters, before, strict=True)
            )
        except Exception as exc:  # reported, not fatal to the capacity run
            result["error"] = f"{type(exc).__name__}: {exc}"
            result["server_log_tail"] = server.log_tail()
        finally:
            for track in tracks:
                track.stop()
            await benchlib.close_all(pc.close() for pc in pcs)
            if janus is not None:
                await janus.close()
            server.stop()
    return result


def ratios(report: dict[str, Any]) -> dict[str, Any]:
    """Sidecoach's CPU per session at each 1-node level, over Janus's."""
    janus = report.get("janus", {}).get("server_cpu_pct")
    out: dict[str, Any] = {}
    for config in report["configs"]:
        for lv in config["levels"]:
            per_session = lv.get("server_cpu_pct_per_session")
            if janus and per_session is not None:
                out[f"{config['name']} N={lv['n']}"] = round(per_session / janus, 2)
    return out


def render_lines(report: dict[str, Any]) -> list[str]:
    janus = report.get("janus")
    if not janus:
        return []
    if janus.get("error"):
        return [f"Janus session shape: !! {janus['error']}"]
    return [
        f"Janus ({report.get('janus_version')}), one session's shape (1 publisher VP8 + Opus,"
        f" {janus['subscribers']} subscribers, no recording): {janus['server_cpu_pct']:.2f}%"
        f" of a core; Sidecoach per session (recording on) / Janus: "
        + (", ".join(f"{k} {v}" for k, v in report.get("per_session_vs_janus", {}).items())
           or "-"),
    ]  # fmt: skip
