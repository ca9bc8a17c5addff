"""The adapter's receive side (server/media/aiortc_adapter.py re-exports
what the rest of the server uses; nothing else imports this module): taps
on aiortc's receivers, MID routing, simulcast, and the per-packet paths
under aiortc, made as short as the libraries allow.

* ``tap_receiver``: every RTP packet of a receiver goes to a sink before
  aiortc's jitter buffer and decoder (see its docstring).
* ``receive_synchronously``: an SRTP (not SRTCP) packet for a tapped
  receiver is unprotected, parsed and handed to the tap as its datagram
  arrives. aiortc would first let aioice try it as a STUN message, queue
  it, wake the DTLS transport's task on the next turn of the event loop,
  and read the wall clock twice for it. Anything else (STUN, DTLS, RTCP, a
  stream whose SSRC is not known yet, a receiver nobody tapped), and
  anything while aioice's queue holds datagrams (so the order stays the
  same), goes aiortc's way.
* ``read_all_ready``: a socket is read until it is empty each time the
  event loop wakes up for it, not one datagram per turn of the loop.
* ``SrtpBuffer``: SRTP protect / unprotect through libsrtp directly (the
  functions pylibsrtp's ``Session`` calls) in a buffer allocated once: the
  RTP header and payload are written into it, protected in place, and
  sent from it. pylibsrtp's own ``protect`` takes a ``bytes`` it copies
  in, allocates a length cell, and copies the result out.

Private names used: aiortc ``RTCRtpReceiver`` internals (codecs, remote
streams, NACK generator, RTCP send/handle), ``RTCDtlsTransport._state`` /
``_rx_srtp`` / ``_rtp_router`` / ``_rtp_header_extensions_map`` and its
receive counters; aioice ``Connection._protocols`` / ``_queue``,
``StunProtocol.datagram_received``; asyncio's selector datagram transport
(``_sock``, ``_protocol``, ``_conn_lost``, the loop's ``_add_reader``);
pylibsrtp ``Session._srtp`` and its
cffi binding. The versions are checked at import (``PINNED``);
tests/test_aiortc_adapter.py covers both receive paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import struct
from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpParameters,
)
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import RtcpRrPacket, RtcpSrPacket, RtpPacket
from pylibsrtp import Session
from pylibsrtp._binding import ffi, lib

logger = logging.getLogger(__name__)

PINNED = {"aiortc": "1.16.0", "aioice": "0.13.0", "pylibsrtp": "1.0.0"}
for _name, _version in PINNED.items():  # pragma: no cover - guards upgrades
    if importlib.metadata.version(_name) != _version:
        raise ImportError(
            f"server.media.aiortc_receive is written against {_name} {_version}, found "
            f"{importlib.metadata.version(_name)}: re-check the private APIs it uses"
        )

RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"

#: called for every incoming RTP packet, before any buffering, with the
#: rid of its simulcast layer when known
PacketSink = Callable[[RtpPacket, RTCRtpCodecParameters, str | None], None]
#: called with (ssrc, ntp_timestamp, rtp_timestamp) for every sender report
SenderReportSink = Callable[[int, int, int], None]
#: the loss (0-255) the listeners of a tapped receiver's track see
LossHint = Callable[[], int]


# ------------------------------------------------------------- taps ----


class _TapSinks:
    """Where a tapped receiver's packets go; swapped when its m-line is reused."""

    def __init__(
        self,
        on_packet: PacketSink,
        on_sender_report: SenderReportSink,
        loss_hint: LossHint | None,
    ) -> None:
        self.on_packet = on_packet
        self.on_sender_report = on_sender_report
        self.loss_hint = loss_hint


def _drop_packet(packet: RtpPacket, codec: RTCRtpCodecParameters, rid: str | None) -> None:
    pass


def _drop_report(ssrc: int, ntp_timestamp: int, rtp_timestamp: int) -> None:
    pass


def tap_receiver(
    receiver: RTCRtpReceiver,
    on_packet: PacketSink,
    on_sender_report: SenderReportSink,
    *,
    loss_hint: LossHint | None = None,
) -> None:
    """Hand every RTP packet of ``receiver`` to ``on_packet`` untouched, before
    aiortc's jitter buffer; nothing is depacketized or decoded.

    Receiver statistics (for RTCP receiver reports to the publisher) and NACK
    generation keep working, per RTP stream; the loss in receiver reports
    is raised to ``loss_hint()`` when that is higher (so
    the publisher's Opus adds as much FEC as its listeners need). aiortc's
    decoder thread is stopped as soon as it starts. Tapping a receiver again
    (its m-line reused for a new track) only changes where things go.
    Packets of a known stream reach ``on_packet`` as their datagram arrives
    (``aiortc_fastpath.receive_synchronously``), the others through aiortc.
    """
    r: Any = receiver  # private state of aiortc's receiver
    existing: _TapSinks | None = getattr(r, "_sidecoach_sinks", None)
    if existing is not None:
        existing.on_packet, existing.on_sender_report = on_packet, on_sender_report
        existing.loss_hint = loss_hint
        return
    sinks = r._sidecoach_sinks = _TapSinks(on_packet, on_sender_report, loss_hint)
    codecs: dict[int, RTCRtpCodecParameters] = r._RTCRtpReceiver__codecs
    streams: dict[int, StreamStatistics] = r._RTCRtpReceiver__remote_streams
    video = r._RTCRtpReceiver__nack_generator is not None
    nack_generators: dict[int, NackGenerator] = {}
    rids: dict[int, str] = {}  # ssrc -> rid, learned from the packets that carry it
    original_receive = r.receive
    original_rtcp = r._handle_rtcp_packet
    original_send_rtcp = r._send_rtcp

    async def receive(parameters: Any) -> None:
        await original_receive(parameters)
        r._RTCRtpReceiver__stop_decoder()

    media_codecs: dict[int, RTCRtpCodecParameters | None] = {}  # per payload type; None = drop

    def deliver(packet: RtpPacket) -> int | None:
        """Hand ``packet`` on; the SSRC to NACK if packets went missing."""
        if not receiver._enabled:
            return None
        pt = packet.payload_type
        if pt in media_codecs:
            codec = media_codecs[pt]
        else:  # first packet of this payload type: decide once, not per packet
            codec = codecs.get(pt)
            if codec is not None and codec.mimeType.lower().endswith("/rtx"):
                codec = None
            if pt in codecs:
                media_codecs[pt] = codec
        if codec is None:
            return None
        ssrc = packet.ssrc
        rid = packet.extensions.rtp_stream_id
        if rid is not None:
            rids[ssrc] = rid
        else:
            rid = rids.get(ssrc)
        sinks.on_packet(packet, codec, rid)
        stats = streams.get(ssrc)
        if stats is None:
            stats = streams[ssrc] = StreamStatistics(codec.clockRate)
        stats.add(packet)
        if video:
            generator = nack_generators.get(ssrc)
            if generator is None:
                generator = nack_generators[ssrc] = NackGenerator()
            seq, last = packet.sequence_number, generator.max_seq
            if last is not None and seq == (last + 1) & 0xFFFF and not generator.missing:
                generator.max_seq = seq  # the next one, nothing missing: all add() would do
            elif generator.add(packet):
                return ssrc
        return None

    async def send_nack(ssrc: int) -> None:
        with contextlib.suppress(ConnectionError):
            await receiver._send_rtcp_nack(ssrc, sorted(nack_generators[ssrc].missing))

    async def handle_rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
        # the next packets of this stream come synchronously (once the
        # transport has sockets; tapped before gathering, it had none)
        receive_synchronously(receiver.transport)
        ssrc = deliver(packet)
        if ssrc is not None:
            await send_nack(ssrc)

    nacks: set[asyncio.Task[None]] = set()

    def spawn_nack(ssrc: int) -> None:
        task = asyncio.ensure_future(send_nack(ssrc))
        nacks.add(task)  # held until done
        task.add_done_callback(nacks.discard)

    async def handle_rtcp(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            info = packet.sender_info
            sinks.on_sender_report(packet.ssrc, info.ntp_timestamp, info.rtp_timestamp)
        await original_rtcp(packet)

    async def send_rtcp(packet: Any) -> None:
        if isinstance(packet, RtcpRrPacket) and sinks.loss_hint is not None:
            hint = min(255, max(0, sinks.loss_hint()))
            for report in packet.reports:
                report.fraction_lost = max(report.fraction_lost, hint)
        await original_send_rtcp(packet)

    r.receive = receive
    r._handle_rtp_packet = handle_rtp
    r._handle_rtcp_packet = handle_rtcp
    r._send_rtcp = send_rtcp
    r._sidecoach_deliver, r._sidecoach_nack = deliver, spawn_nack
    receive_synchronously(receiver.transport)


def untap_receiver(receiver: RTCRtpReceiver) -> None:
    """Drop a tapped receiver's packets (its track was unpublished)."""
    sinks: _TapSinks | None = getattr(receiver, "_sidecoach_sinks", None)
    if sinks is not None:
        sinks.on_packet, sinks.on_sender_report = _drop_packet, _drop_report
        sinks.loss_hint = None


def route_by_mid(pc: RTCPeerConnection) -> None:
    """Route an RTP stream whose SSRC is not known yet by its MID header
    extension. aiortc routes an unknown SSRC by payload type when one
    receiver has that type: during a renegotiation that adds a second VP8
    camera, the new camera's first packets (sent before the server applied
    the answer) would be taken for the first camera's. A packet whose MID
    names no receiver (yet) is dropped; one without a MID goes to aiortc's
    routing. Simulcast streams (no SSRC in the answer) need this too.
    Call after each answer; calling again is harmless."""
    for transceiver in pc.getTransceivers():
        dtls: Any = transceiver.receiver.transport
        if dtls is None:
            continue
        router = dtls._rtp_router
        if getattr(router, "_sidecoach_mid_routing", False):
            continue
        router._sidecoach_mid_routing = True
        original = router.route_rtp

        def route_rtp(packet: RtpPacket, router: Any = router, original: Any = original) -> Any:
            mid = packet.extensions.mid
            if mid is not None and packet.ssrc not in router.ssrc_table:
                found = router.mid_table.get(mid)
                if found is not None:
                    router.ssrc_table[packet.ssrc] = found
                return found
            return original(packet)

        router.route_rtp = route_rtp


def accept_simulcast(pc: RTCPeerConnection, rid_extension_id: int) -> None:
    """Let ``pc`` receive simulcast: read the RTP stream id header extension
    (``rid_extension_id``, as negotiated in the answer) into
    ``packet.extensions.rtp_stream_id``. Calling again is harmless."""
    ids = RTCRtpParameters(
        headerExtensions=[RTCRtpHeaderExtensionParameters(id=rid_extension_id, uri=RID_URI)]
    )
    for transceiver in pc.getTransceivers():
        dtls: Any = transceiver.receiver.transport
        if dtls is not None:
            dtls._rtp_header_extensions_map.configure(ids)
    route_by_mid(pc)


# ------------------------------------------------------ per packet ----

#: datagrams read from one socket per wake-up of the event loop, at most
MAX_DATAGRAMS_PER_READ = 32
#: the largest datagram read (asyncio's datagram transports read this much)
MAX_DATAGRAM_BYTES = 256 * 1024
#: the largest datagram handled (an RTP packet plus the largest SRTP trailer)
SRTP_BUFFER_BYTES = 2048
#: room libsrtp may add when protecting (pylibsrtp's SRTP_MAX_TRAILER_LEN)
SRTP_TRAILER_BYTES = 16 + 128
SRTP_OK = 0
_RTP_HEADER = struct.Struct("!BBHII")

#: a tapped receiver's synchronous packet sink; returns the SSRC to send a
#: NACK for (the tap's generator says packets are missing), or None
Deliver = Callable[[RtpPacket], "int | None"]


class SrtpBuffer:
    """One libsrtp session's protect/unprotect in a buffer of its own."""

    def __init__(self, session: Session) -> None:
        #: held: libsrtp's context lives as long as the Session does
        self.session = session
        self._ctx = session._srtp[0]
        self._cdata = ffi.new("char[]", SRTP_BUFFER_BYTES)
        self.view = ffi.buffer(self._cdata)
        self._len = ffi.new("int *")

    def protect_rtp(
        self, first_byte: int, second_byte: int, seq: int, ts: int, ssrc: int,
        extension: bytes, payload: bytes,
    ) -> bytes | None:  # fmt: skip
        """The SRTP packet for this header, ``extension`` (the header
        extension block, or b"") and ``payload``; None if libsrtp refuses
        it (a sequence number it protected before) or it is too long."""
        view = self.view
        head = 12 + len(extension)
        end = head + len(payload)
        if end > SRTP_BUFFER_BYTES - SRTP_TRAILER_BYTES:
            return None
        _RTP_HEADER.pack_into(view, 0, first_byte, second_byte, seq, ts, ssrc)
        if extension:
            view[12:head] = extension
        view[head:end] = payload
        self._len[0] = end
        if lib.srtp_protect(self._ctx, self._cdata, self._len) != SRTP_OK:
            return None
        out: bytes = view[0 : self._len[0]]
        return out

    def unprotect(self, data: bytes) -> bytes | None:
        """The RTP packet in SRTP packet ``data``; None if it does not
        authenticate (or replays one seen before)."""
        size = len(data)
        if size > SRTP_BUFFER_BYTES:
            return None
        view = self.view
        view[0:size] = data
        self._len[0] = size
        if lib.srtp_unprotect(self._ctx, self._cdata, self._len) != SRTP_OK:
            return None
        out: bytes = view[0 : self._len[0]]
        return out


def parse_rtp(data: bytes, extensions_map: Any) -> RtpPacket:
    """``RtpPacket.parse``, without reading header extensions when none is
    needed: nothing but a simulcast stream's id (the tap learns a stream's
    rid from its packets) is read from a packet whose SSRC is known. A
    packet with CSRCs or padding, or on a transport that reads rids, is
    parsed by aiortc. ValueError if it is malformed."""
    if (
        len(data) < 12
        or data[0] & 0x2F
        or extensions_map._HeaderExtensionsMap__ids.rtp_stream_id is not None
    ):
        return RtpPacket.parse(data, extensions_map)
    b0, b1, seq, ts, ssrc = _RTP_HEADER.unpack_from(data)
    pos = 12
    if b0 & 0x10:  # X: a header extension block
        if len(data) < 16:
            raise ValueError("RTP packet has truncated extension profile / length")
        pos = 16 + 4 * ((data[14] << 8) | data[15])
        if len(data) < pos:
            raise ValueError("RTP packet has truncated extension value")
    return RtpPacket(payload_type=b1 & 0x7F, marker=b1 >> 7, sequence_number=seq,
                     timestamp=ts, ssrc=ssrc, payload=data[pos:])  # fmt: skip


def receive_synchronously(dtls: Any) -> None:
    """Route RTP arriving on ``dtls`` (an ``RTCDtlsTransport``) to tapped
    receivers as it arrives (see the module docstring), and read its
    sockets until empty per wake-up (``read_all_ready``). A receiver is
    tapped when it has ``_sidecoach_deliver`` (a ``Deliver``) and
    ``_sidecoach_nack`` (sends a NACK for an SSRC, in a task). Calling
    again is harmless."""
    if dtls is None or getattr(dtls, "_sidecoach_sync", False):
        return
    connection: Any = dtls.transport._connection
    if not connection._protocols:
        return  # not gathered yet: the tap's first packet calls again
    dtls._sidecoach_sync = True
    router = dtls._rtp_router
    ssrc_table: dict[int, Any] = router.ssrc_table
    pt_table: dict[int, set[Any]] = router.payload_type_table
    extensions_map = dtls._rtp_header_extensions_map
    queue = connection._queue
    buffers: list[SrtpBuffer] = []  # the one for the current session (new DTLS, new keys)
    connected = DtlsState.CONNECTED

    def receive(data: bytes) -> bool:
        """Whether ``data`` was handled here."""
        receiver: Any = ssrc_table.get(int.from_bytes(data[8:12], "big"))
        deliver: Deliver | None = getattr(receiver, "_sidecoach_deliver", None)
        if deliver is None or receiver not in pt_table.get(data[1] & 0x7F, ()):
            return False
        session = dtls._rx_srtp
        if not buffers or buffers[0].session is not session:
            buffers[:] = [SrtpBuffer(session)]
        plain = buffers[0].unprotect(data)
        if plain is None:
            return True  # aiortc drops it too (it logs at debug level)
        dtls._RTCDtlsTransport__rx_bytes += len(data)
        dtls._RTCDtlsTransport__rx_packets += 1
        try:
            packet = parse_rtp(plain, extensions_map)
        except ValueError:
            return True
        nack_ssrc = deliver(packet)
        if nack_ssrc is not None:
            receiver._sidecoach_nack(nack_ssrc)
        return True

    def patch(protocol: Any) -> None:
        original = protocol.datagram_received
        read_all_ready(protocol.transport)

        def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
            if (
                127 < data[0] < 192  # RTP or RTCP (RFC 7983)
                and not 191 < data[1] < 224  # not RTCP (RFC 5761)
                and len(data) > 12
                and dtls._state is connected
                and dtls._rx_srtp is not None
                and queue.empty()
                and receive(data)
            ):
                return
            original(data, addr)

        protocol.datagram_received = datagram_received

    for protocol in connection._protocols:
        patch(protocol)


def read_all_ready(transport: Any) -> None:
    """Let asyncio's datagram ``transport`` read every datagram waiting in
    its socket when the event loop sees it readable (up to
    ``MAX_DATAGRAMS_PER_READ``), not one per turn of the loop: a publisher
    sends a video frame's packets back to back, and every turn (and every
    wake-up) of the loop costs more than handling a packet. Any other kind
    of transport (uvloop's, a TURN relay) is left alone."""
    loop: Any = getattr(transport, "_loop", None)
    sock = getattr(transport, "_sock", None)
    if (
        getattr(transport, "_sidecoach_read_all", False)
        or sock is None
        or not hasattr(loop, "_add_reader")
        or not hasattr(transport, "_protocol")
        or transport.is_closing()
    ):
        return
    transport._sidecoach_read_all = True
    recvfrom = sock.recvfrom

    def read_ready() -> None:
        protocol = transport._protocol
        for _ in range(MAX_DATAGRAMS_PER_READ):
            if transport._conn_lost:
                return
            try:
                data, addr = recvfrom(MAX_DATAGRAM_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                protocol.error_received(exc)
                return
            protocol.datagram_received(data, addr)

    loop._remove_reader(sock.fileno())
    loop._add_reader(sock.fileno(), read_ready)
