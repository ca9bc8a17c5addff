"""What Sidecoach's forwarding path costs per packet, measured in this
process on the real code: aiortc/aioice receiving, the adapter's tap, a
``Producer``, ``Consumer``s writing through ``OutboundRtp`` (SRTP +
``sendto``), and the ``Recorder``.

The rig: a publisher peer connection (A) and a server-side one (B),
connected over ``ip``; B's receiver tapped into a Producer. For each
consumer, a server-side peer connection (S) with an ``OutboundRtp`` writer
and a client (C) that never processes what it gets (a drain process reads
its socket, so the kernel's work for a delivered datagram is the same as
with a real reader). An injector process sends SRTP packets, protected in
advance with A's keys (the pre-encoded VP8 clip, packetized as aiortc
does, with MID and abs-send-time header extensions), straight to B's ICE
socket at ``RATE_PPS``, a frame's packets back to back. The CPU of all this process's threads over a
window, minus the same window with the injector sending elsewhere (the
rig idling), per packet injected:

* ``paced_producer_us``: the receive path and a Producer with no consumer;
* ``paced_consumer_us``: each added consumer (the slope over ``CONSUMER_LEVELS``);
* ``paced_recorder_us``: the Recorder's consumer (its writer thread included).

Paced figures include what waking up for a datagram costs, and move with
the machine's load. The same three are measured hot (``producer_us``,
``consumer_us``, ``recorder_us``, without ``paced_``): batches of packets
handed straight to B's socket callback, timed on this thread, as the
floor (fwdcost.py) is timed; the Recorder's writer thread is left out.

The clients never answer the server's ICE consent checks once the drain
owns their sockets: the rig stops those checks on both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent)]

import benchlib  # noqa: E402
import numpy as np  # noqa: E402
from aiortc import RTCPeerConnection, RTCRtpTransceiver  # noqa: E402
from aiortc.codecs.vpx import Vp8Encoder  # noqa: E402
from aiortc.rtp import RtpPacket  # noqa: E402

from server.core.clock import SessionClock  # noqa: E402
from server.media import aiortc_adapter as adapter  # noqa: E402
from server.media.consumer import Consumer  # noqa: E402
from server.media.policy import RECORDER_ROLE, ProducerInfo, Source  # noqa: E402
from server.media.producer import CodecInfo, Producer  # noqa: E402
from server.recording.recorder import Recorder  # noqa: E402

#: injected packets per second (several times a real camera's ~100, for signal)
RATE_PPS = 800
WINDOW_S = 1.5
QUICK_WINDOW_S = 0.5
#: busy/quiet window pairs per figure (the median is kept)
PAIRS = 3
QUICK_PAIRS = 1
#: hot measurement: packets per batch (the clients' sockets must hold a
#: batch), batches (the median is kept), the pause between batches, and
#: the turns of the event loop a batch may take
HOT_BATCH = 40
HOT_BATCHES = 25
QUICK_HOT_BATCHES = 5
HOT_PAUSE_S = 0.02
HOT_MAX_TURNS = 10_000
CONSUMER_LEVELS = (0, 4, 8)
QUICK_CONSUMER_LEVELS = (0, 2)
CONNECT_TIMEOUT_S = 20.0
#: the Recorder's backlog limit in the rig
RECORDER_BACKLOG_BYTES = 64 * 1024 * 1024
ICE_COMPONENT_RTP = 1


async def _connect(offerer: RTCPeerConnection, answerer: RTCPeerConnection, ip: str) -> None:
    offer = await offerer.createOffer()
    adapter.restrict_ice(offerer, (ip,), None)
    await offerer.setLocalDescription(offer)
    await answerer.setRemoteDescription(offerer.localDescription)
    answer = await answerer.createAnswer()
    adapter.restrict_ice(answerer, (ip,), None)
    await answerer.setLocalDescription(answer)
    await offerer.setRemoteDescription(answerer.localDescription)
    await benchlib.wait_until(
        lambda: offerer.connectionState == answerer.connectionState == "connected",
        CONNECT_TIMEOUT_S, "rig peer connections",
    )  # fmt: skip


def _ice(transceiver: RTCRtpTransceiver) -> Any:
    return transceiver.receiver.transport.transport._connection


def _sockets(connection: Any) -> list[socket.socket]:
    return [p.transport._sock for p in connection._protocols if p.transport is not None]


@dataclass
class _Leg:
    server: RTCPeerConnection
    client: RTCPeerConnection
    consumer: Consumer


@dataclass
class Rig:
    ip: str
    frames: list[bytes]
    workdir: Path
    pcs: list[RTCPeerConnection] = field(default_factory=list)
    legs: list[_Leg] = field(default_factory=list)
    recorder: Recorder | None = None
    drained: list[socket.socket] = field(default_factory=list)

    async def start(self) -> None:
        self.pub = adapter.new_peer_connection()
        self.srv = adapter.new_peer_connection()
        self.pcs += [self.pub, self.srv]
        sending = self.pub.addTransceiver("video", direction="sendonly")
        adapter.prefer_codec(sending, "video/VP8", {})
        await _connect(self.pub, self.srv, self.ip)
        receiving = self.srv.getTransceivers()[0]
        codec = adapter.negotiated_codec(receiving)
        assert codec is not None

        async def nothing(*args: Any) -> None:
            pass

        info = ProducerInfo("rig-pub", "rig-producer", "teacher", Source.CAMERA, "video")
        self.producer = Producer(
            info, CodecInfo.from_aiortc(codec), request_keyframe=nothing, request_nack=nothing,
            keyframe_min_interval_ms=1000, cache_size=512, send_remb=nothing,
            max_bitrate_bps=2_500_000,
        )  # fmt: skip
        adapter.tap_receiver(receiving.receiver, self.producer.on_packet,
                             self.producer.on_sender_report)  # fmt: skip
        adapter.route_by_mid(self.srv)
        pair = _ice(receiving)._nominated[ICE_COMPONENT_RTP]
        self.target = pair.protocol.transport.get_extra_info("sockname")[:2]
        self.protocol, self.source = pair.protocol, pair.remote_addr
        self._dtls: Any = sending.sender.transport
        self._ssrc = sending.sender._ssrc
        self._pt = int(adapter.negotiated_codec(sending).payloadType)  # type: ignore[union-attr]
        self._seq = 1000
        self._ts = 0
        self._frame = 0

    async def add_consumer(self) -> None:
        server, client = adapter.new_peer_connection(), adapter.new_peer_connection()
        self.pcs += [server, client]
        track = adapter.IdleTrack("video")
        transceiver = server.addTransceiver(track, direction="sendonly")
        adapter.prefer_codec(transceiver, "video/VP8", {})
        await _connect(server, client, self.ip)
        for pc in (server, client):
            # the client will not answer consent checks once the drain reads
            # its socket (aioice would close the pair after ~30 s)
            task = _ice(pc.getTransceivers()[0])._query_consent_task
            if task is not None:
                task.cancel()
        consumer = Consumer(f"c{len(self.legs)}", self.producer, f"viewer{len(self.legs)}")
        consumer.bind(adapter.OutboundRtp(transceiver, consumer.on_feedback))
        self.producer.add_consumer(consumer)
        loop: Any = asyncio.get_running_loop()
        for sock in _sockets(_ice(client.getTransceivers()[0])):
            loop._remove_reader(sock.fileno())  # the drain process reads it from now on
            self.drained.append(sock)
        self.legs.append(_Leg(server, client, consumer))

    def add_recorder(self) -> None:
        clock = SessionClock()
        clock.start()
        self.recorder = Recorder(
            session_id="rig", directory=self.workdir / "recording", clock=clock,
            on_error=lambda reason: None, session_info={},
            max_backlog_bytes=RECORDER_BACKLOG_BYTES,
        )  # fmt: skip
        consumer = Consumer("rec", self.producer, "recorder", RECORDER_ROLE)
        consumer.bind(self.recorder.open_writer(consumer))
        self.producer.add_consumer(consumer)

    def packets(self, count: int) -> list[bytes]:
        """The next ``count`` packets or more (whole frames), protected."""
        out: list[bytes] = []
        extensions = self._dtls._rtp_header_extensions_map
        while len(out) < count:
            data = self.frames[self._frame % len(self.frames)]
            self._frame += 1
            payloads = Vp8Encoder._packetize(data, self._frame & 0x7FFF)
            self._ts = (self._ts + benchlib.TS_STEP) & 0xFFFFFFFF
            for i, payload in enumerate(payloads):
                rtp = RtpPacket(payload_type=self._pt, sequence_number=self._seq & 0xFFFF,
                                timestamp=self._ts, ssrc=self._ssrc,
                                marker=int(i == len(payloads) - 1), payload=payload)  # fmt: skip
                rtp.extensions.mid = "0"
                rtp.extensions.abs_send_time = (int(time.time() * 262144)) & 0xFFFFFF
                self._seq += 1
                out.append(self._dtls._tx_srtp.protect(rtp.serialize(extensions)))
        return out

    async def close(self) -> None:
        await self.producer.close()
        if self.recorder is not None:
            await self.recorder.close()
        for pc in self.pcs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pc.close(), 5)


#: the injector: waits for a line on stdin, then sends the length-prefixed
#: datagrams of a file to (host, port), a frame's packets back to back (as
#: a publisher does; the RTP marker bit ends a frame), ``rate`` packets/s
INJECTOR = """
import socket, struct, sys, time
path, host, port, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
blob = open(path, "rb").read()
packets, i = [], 0
while i < len(blob):
    (n, marker) = struct.unpack_from("!HB", blob, i)
    packets.append((blob[i + 3 : i + 3 + n], marker))
    i += 3 + n
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sys.stdin.readline()
t0 = time.perf_counter()
for k, (data, marker) in enumerate(packets):
    sock.sendto(data, (host, port))
    wait = t0 + (k + 1) / rate - time.perf_counter()
    if marker and wait > 0:
        time.sleep(wait)
"""
#: the drain: reads (and drops) whatever reaches the sockets it inherited
DRAIN = """
import os, select, socket, sys
socks = [socket.socket(fileno=int(fd)) for fd in sys.argv[1:]]
while True:
    ready, _, _ = select.select(socks, [], [], 1.0)
    for sock in ready:
        try:
            while True:
                sock.recv(65536, socket.MSG_DONTWAIT)
        except OSError:
            pass
"""


class _Helpers:
    """The injector and the drain run as processes of their own: their CPU
    (and their GIL) is not the server's."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.drain: subprocess.Popen[bytes] | None = None

    def drain_sockets(self, socks: list[socket.socket]) -> None:
        self.stop_drain()
        fds = [s.fileno() for s in socks]
        self.drain = subprocess.Popen([sys.executable, "-S", "-c", DRAIN, *map(str, fds)],
                                      pass_fds=fds)  # fmt: skip

    def pause_drain(self, paused: bool) -> None:
        if self.drain is not None:
            os.kill(self.drain.pid, signal.SIGSTOP if paused else signal.SIGCONT)  # ours

    def stop_drain(self) -> None:
        if self.drain is not None:
            self.drain.kill()  # ours, by PID
            self.drain.wait(timeout=5)
            self.drain = None

    def injector(self, packets: list[bytes], target: tuple[str, int]) -> subprocess.Popen[bytes]:
        path = self.workdir / "packets.bin"
        # SRTP leaves the header in the clear: the marker bit ends a frame
        path.write_bytes(b"".join(struct.pack("!HB", len(p), p[1] >> 7) + p for p in packets))
        return subprocess.Popen(
            [sys.executable, "-S", "-c", INJECTOR, str(path), target[0], str(target[1]),
             str(RATE_PPS)], stdin=subprocess.PIPE,
        )  # fmt: skip


def _own_cpu_ns() -> int:
    return sum(benchlib.thread_cpu_ns(os.getpid()).values())


async def _window(helpers: _Helpers, packets: list[bytes], target: tuple[str, int]) -> float:
    """CPU ns of this process per packet of ``packets`` injected to ``target``."""
    seconds = len(packets) / RATE_PPS
    proc = helpers.injector(packets, target)
    assert proc.stdin is not None
    await asyncio.sleep(0.2)  # the injector has started and read its packets
    c0 = _own_cpu_ns()
    proc.stdin.write(b"go\n")
    proc.stdin.close()
    deadline = time.monotonic() + seconds * 3 + 10
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)  # the last packets are processed
    cost = (_own_cpu_ns() - c0) / len(packets)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=5)
    return cost


async def _cost(
    rig: Rig, helpers: _Helpers, seconds: float, idle: tuple[str, int], pairs: int
) -> float:
    """Microseconds per packet: a window to the rig minus one elsewhere, the
    median over ``pairs`` such pairs (the machine is shared)."""
    diffs = []
    for _ in range(pairs):
        packets = rig.packets(int(RATE_PPS * seconds))
        busy = await _window(helpers, packets, rig.target)
        quiet = await _window(helpers, packets, idle)  # the same packets: no gap at the rig
        diffs.append((busy - quiet) / 1000)
    return float(np.median(diffs))


async def _hot(rig: Rig, helpers: _Helpers, batches: int) -> float:
    """Microseconds of this thread per packet handed straight to B's socket
    callback, batch after batch (no wake-ups: the code's own cost, hot in
    the caches), the median over ``batches``. The drain is stopped during a
    batch, so the clients' sockets only queue what they get."""
    per_packet = []
    for _ in range(batches):
        packets = rig.packets(HOT_BATCH)
        helpers.pause_drain(True)
        before = rig.producer.packets_received
        t0 = time.thread_time_ns()
        for data in packets:
            rig.protocol.datagram_received(data, rig.source)
        for _ in range(HOT_MAX_TURNS):  # aiortc's way takes turns of the event loop
            if rig.producer.packets_received - before >= len(packets):
                break
            await asyncio.sleep(0)
        per_packet.append((time.thread_time_ns() - t0) / len(packets) / 1000)
        helpers.pause_drain(False)
        await asyncio.sleep(HOT_PAUSE_S)
    return float(np.median(per_packet))


def _slope(costs: dict[int, float]) -> float | None:
    if len(costs) < 2:
        return None
    return float(np.polyfit(np.array(list(costs), float), np.array(list(costs.values())), 1)[0])


async def measure(ip: str, frames: list[bytes], quick: bool = False) -> dict[str, Any]:
    seconds = QUICK_WINDOW_S if quick else WINDOW_S
    pairs = QUICK_PAIRS if quick else PAIRS
    batches = QUICK_HOT_BATCHES if quick else HOT_BATCHES
    levels = QUICK_CONSUMER_LEVELS if quick else CONSUMER_LEVELS
    with tempfile.TemporaryDirectory(prefix="fwdpath-") as tmp:
        rig = Rig(ip, frames, Path(tmp))
        idle_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        idle_sock.bind((ip, 0))
        idle = idle_sock.getsockname()
        helpers = _Helpers(Path(tmp))
        try:
            await rig.start()
            await _cost(rig, helpers, seconds / 2, idle, 1)  # warm-up
            paced: dict[int, float] = {}
            hot: dict[int, float] = {}
            for n in levels:
                while len(rig.legs) < n:
                    await rig.add_consumer()
                helpers.drain_sockets(rig.drained)
                # a keyframe for the new consumers, and a warm-up
                await _window(helpers, rig.packets(int(RATE_PPS * seconds / 2)), rig.target)
                hot[n] = await _hot(rig, helpers, batches)
                paced[n] = await _cost(rig, helpers, seconds, idle, pairs)
            top = max(levels)
            rig.add_recorder()
            await _window(helpers, rig.packets(int(RATE_PPS * seconds / 2)), rig.target)
            hot_recorder = await _hot(rig, helpers, batches) - hot[top]
            paced_recorder = await _cost(rig, helpers, seconds, idle, pairs) - paced[top]
            sent = [leg.consumer.packets_sent for leg in rig.legs]
        finally:
            helpers.stop_drain()
            idle_sock.close()
            await rig.close()
    hot_slope, paced_slope = _slope(hot), _slope(paced)
    return {
        "producer_us": round(hot[0], 2),
        "consumer_us": round(hot_slope, 2) if hot_slope is not None else None,
        "recorder_us": round(hot_recorder, 2),
        "paced_producer_us": round(paced[0], 2),
        "paced_consumer_us": round(paced_slope, 2) if paced_slope is not None else None,
        "paced_recorder_us": round(paced_recorder, 2),
        "hot_us_by_consumers": {str(k): round(v, 2) for k, v in hot.items()},
        "paced_us_by_consumers": {str(k): round(v, 2) for k, v in paced.items()},
        "rate_pps": RATE_PPS,
        "window_s": seconds,
        "window_pairs": pairs,
        "hot_batches": batches,
        "consumers_forwarded_packets": sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ip", default="127.0.0.1", help="address the rig connects over")
    benchlib.add_cache_and_verbose_args(parser, "where the encoded clip is kept")
    args = parser.parse_args()
    benchlib.configure_logging(args.verbose)
    frames = benchlib.load_video_clip(benchlib.make_video_clip(Path(args.cache_dir), 4))
    print(json.dumps(asyncio.run(measure(args.ip, frames, args.quick)), indent=2))


if __name__ == "__main__":
    main()
