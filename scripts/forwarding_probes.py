"""The probes of ``bench_forwarding.py``: when the publisher sent each RTP
packet, and when each subscriber's kernel received it.

* ``PublisherProbe`` stamps every RTP packet on entry to the publisher's
  ``RTCDtlsTransport._send_rtp`` (before SRTP protect), with the wall clock
  (``time.time()``, the clock of kernel receive timestamps).
* ``ForwardedProbe`` is a subscriber: its receiver is tapped (no jitter
  buffer, no decoding) and, once its ICE pair is nominated, its UDP socket
  reports kernel receive time stamps (``SO_TIMESTAMPNS``), read with
  ``recvmsg`` by a reader that replaces asyncio's for that socket. A packet
  is matched to the publisher's by its payload (forwarding servers send it
  byte-identical); its kernel time stamp by its SSRC and sequence number,
  which SRTP leaves in the clear. So the latency is publisher send ->
  subscriber kernel receive, and whatever the bench process does with a
  packet after the kernel has it is not counted (the time at the tap, after
  the bench's own SRTP and RTP parsing, is reported beside it).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Iterable
from typing import Any

import benchlib
from aiortc import RTCPeerConnection
from aiortc.rtp import RtpPacket

#: SO_TIMESTAMPNS / SCM_TIMESTAMPNS (Linux, asm-generic/socket.h)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@ll")
#: room for the time stamp's control message
ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)
MAX_DATAGRAM = 65536
ICE_COMPONENT_RTP = 1
#: kernel stamps of packets not (yet) seen at the tap: kept at most this many
MAX_PENDING_STAMPS = 4096


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
        t = time.time()
        payload = data[benchlib.rtp_payload_offset(data) :]
        self.packets += 1
        self.payload_bytes += len(payload)
        self.packet_sent.setdefault(hash(payload), t)
        self.frame_sent.setdefault(struct.unpack_from("!I", data, 4)[0], t)


def stamp_kernel_receive(pc: RTCPeerConnection, stamps: dict[int, float]) -> bool:
    """Record into ``stamps`` (key ``ssrc << 16 | seq``) the kernel receive
    time of every RTP packet reaching ``pc``'s nominated ICE pair; False if
    no pair is nominated yet. asyncio's reader for that socket is replaced
    by one that reads with ``recvmsg``; the socket's transport removes it
    when it closes."""
    transceivers = pc.getTransceivers()
    if not transceivers or transceivers[0].receiver.transport is None:
        return False
    connection: Any = transceivers[0].receiver.transport.transport._connection
    pair = connection._nominated.get(ICE_COMPONENT_RTP)
    if pair is None:
        return False
    transport: Any = pair.protocol.transport
    protocol = pair.protocol
    sock: socket.socket = transport._sock
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    loop: Any = asyncio.get_running_loop()
    fd = sock.fileno()

    def read_ready() -> None:
        try:
            data, ancillary, _flags, addr = sock.recvmsg(MAX_DATAGRAM, ANCILLARY_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            protocol.error_received(exc)
            return
        if len(data) >= 12 and 128 <= data[0] < 192 and not 192 <= data[1] <= 223:
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack_from(value)
                    if len(stamps) >= MAX_PENDING_STAMPS:
                        stamps.clear()
                    ssrc, seq = struct.unpack_from("!I", data, 8)[0], data[2] << 8 | data[3]
                    stamps[ssrc << 16 | seq] = sec + nsec * 1e-9
        protocol.datagram_received(data, addr)

    loop._remove_reader(fd)
    loop._add_reader(fd, read_ready)
    return True


class ForwardedProbe:
    """A subscriber: counts packets at its tapped receiver and, in a
    window, records (payload hash, RTP timestamp, tap time, kernel time)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pc: RTCPeerConnection | None = None
        self.packets = 0
        self.payload_bytes = 0
        self.recording = False
        self.arrivals: list[tuple[int, int, float, float | None]] = []
        #: re-encoding baseline: subscriber ts - publisher ts
        self.offset: int | None = None
        self._seen: set[int] = set()
        self._stamps: dict[int, float] = {}
        self._stamping = False

    def on_packet(self, packet: RtpPacket, codec: Any, rid: str | None = None) -> None:
        t = time.time()
        self.packets += 1
        self.payload_bytes += len(packet.payload)
        if not self._stamping and self.pc is not None:
            self._stamping = stamp_kernel_receive(self.pc, self._stamps)
        kernel_t = self._stamps.pop(packet.ssrc << 16 | packet.sequence_number, None)
        if self.recording and packet.sequence_number not in self._seen:
            self._seen.add(packet.sequence_number)  # ignore retransmissions
            self.arrivals.append((hash(packet.payload), packet.timestamp, t, kernel_t))

    def start_window(self) -> None:
        self.arrivals = []
        self._seen = set()
        self.recording = True

    def stop_window(self) -> None:
        self.recording = False


def packet_latencies(
    probe: ForwardedProbe, pub: PublisherProbe
) -> tuple[list[float], list[float], int]:
    """Per packet, matched by payload hash (forwarding servers): publisher ->
    kernel and publisher -> tap (ms), and how many were not matched."""
    kernel, tap, unmatched = [], [], 0
    for h, _ts, t, k in probe.arrivals:
        sent = pub.packet_sent.get(h)
        if sent is None:
            unmatched += 1
            continue
        tap.append((t - sent) * 1000)
        if k is not None:
            kernel.append((k - sent) * 1000)
    return kernel, tap, unmatched


# ------------------------------------------------- re-encoding baseline ----

#: ticks; << benchlib.TS_STEP - TS_JITTER, so matching stays unambiguous
TS_SLACK = 2


Arrival = tuple[int, int, float, float | None]


def first_packets(arrivals: Iterable[Arrival]) -> list[tuple[int, float]]:
    seen: set[int] = set()
    frames = []
    for _h, ts, _t, k in arrivals:
        if ts not in seen and k is not None:
            seen.add(ts)
            frames.append((ts, k))
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


def frame_latencies(
    probe: ForwardedProbe, pub: PublisherProbe
) -> tuple[list[float], list[float], int]:
    """Per frame (first packet, kernel time), matched by RTP timestamp
    (re-encoding servers: the payload changes); no tap times."""
    frames = first_packets(probe.arrivals)
    if probe.offset is None:
        probe.offset = estimate_offset(frames, pub)
    if probe.offset is None:
        return [], [], len(frames)
    out, unmatched = [], 0
    for ts, t in frames:
        sent = _lookup(pub.frame_sent, ts - probe.offset)
        if sent is None:
            unmatched += 1
        else:
            out.append((t - sent) * 1000)
    return out, [], unmatched
