"""Every use of aiortc/aioice/pylibsrtp internals lives here, and only
here (with the receive side in server/media/aiortc_receive.py, which only
this module imports; its names are re-exported here).

Sidecoach forwards RTP packets instead of decoding and re-encoding them.
aiortc has no public API for that, so this module

* taps an ``RTCRtpReceiver`` *before* its jitter buffer and decoder
  (``tap_receiver``) and keeps its RTCP receiver statistics, NACK
  generation (per RTP stream: a simulcast m-line carries several)
  working; it can raise the loss its
  receiver reports to the publisher to what the listeners see; its
  receive-side bandwidth estimator is not fed (in Python, arrival times
  taken after the event loop's queueing make it see congestion that is not
  there: on a loaded 2-core host it estimated 150-640 kbit/s for a
  loopback link); a tapped receiver's packets are handled as their
  datagram arrives, not through aiortc's queue and task;
* routes RTP streams whose SSRC is not known yet by their MID header
  extension (``route_by_mid``), and receives simulcast
  (``accept_simulcast``): the RTP stream id header extension is read;
* sends REMB upstream (``send_remb``);
* turns an ``RTCRtpSender`` into a raw packet writer (``OutboundRtp``): its
  own RTP loop idles on a track that never yields, and packets are rewritten
  (with the server's abs-send-time, for the receiver's bandwidth estimate)
  and written synchronously through SRTP (protected in place in a buffer
  of the writer's) to the ICE socket; REMB and loss reports from the
  receiver go to the Consumer;
* restricts ICE gathering to configured listen addresses and announces
  another address if asked (``restrict_ice``), because aioice skips
  loopback and has no notion of an announced address.

The private names used here are those of aiortc ``PINNED_AIORTC`` (and
aioice, pylibsrtp: ``aiortc_receive.PINNED``); the versions are checked at
import and the adapter has its own tests (tests/test_aiortc_adapter.py) so
an upgrade fails loudly, not silently.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiortc
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc import clock as aiortc_clock
from aiortc.codecs.h264 import h264_depayload
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
    pack_header_extensions,
    pack_remb_fci,
    unpack_remb_fci,
)
from aiortc.sdp import candidate_from_sdp

from server.media.aiortc_receive import (
    RID_URI,
    LossHint,
    PacketSink,
    SenderReportSink,
    SrtpBuffer,
    accept_simulcast,
    route_by_mid,
    tap_receiver,
    untap_receiver,
)
from server.media.keyframes import vp8_descriptor_size

logger = logging.getLogger(__name__)

PINNED_AIORTC = "1.16.0"
if aiortc.__version__ != PINNED_AIORTC:  # pragma: no cover - guards upgrades
    raise ImportError(
        f"server.media.aiortc_adapter is written against aiortc {PINNED_AIORTC}, "
        f"found {aiortc.__version__}: re-check the private APIs it uses"
    )

__all__ = ["RID_URI", "LossHint", "PacketSink", "SenderReportSink", "accept_simulcast",
           "route_by_mid", "tap_receiver", "untap_receiver"]  # fmt: skip

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
_RTP_HEADER = struct.Struct("!BBHII")
ICE_COMPONENT_RTP = 1
_DTLS_CONNECTED = DtlsState.CONNECTED
#: a forwarding sender's reports: this often, aligned on the loop's clock
SENDER_REPORT_INTERVAL_S = 1.0
#: a report due sooner than this after the sender starts waits one more interval
SENDER_REPORT_MIN_WAIT_S = 0.2
RTCP_SDES_CNAME = 1
#: seconds from the NTP epoch (1900) to the Unix epoch (1970)
NTP_UNIX_OFFSET = 2208988800


# ---------------------------------------------------------------- ICE ----


def new_peer_connection() -> RTCPeerConnection:
    """A peer connection that never contacts a STUN server of its own and
    bundles every m-line on one transport.

    ``max-bundle`` is not only leaner: with aiortc's default ``balanced``
    policy, a transceiver added while the first offer is still unanswered
    keeps a transport that the answer's BUNDLE then discards, and its media
    never flows (tests/test_aiortc_adapter.py shows it).
    """
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


def restrict_ice(
    pc: RTCPeerConnection, listen_ips: tuple[str, ...], announced_ip: str | None
) -> None:
    """Gather host candidates only on ``listen_ips`` (may include loopback)
    and, if given, announce ``announced_ip`` in place of the listen address.

    Call before every ``setLocalDescription``: transports created by a
    renegotiation are patched too; patching twice is harmless.
    """
    if not listen_ips and announced_ip is None:
        return
    for transceiver in pc.getTransceivers():
        # Any: this reaches into aioice's private state
        connection: Any = transceiver.sender.transport.transport.iceGatherer._connection
        if getattr(connection, "_sidecoach_restricted", False):
            continue
        connection._sidecoach_restricted = True
        original = connection.gather_candidates

        async def gather(
            connection: Any = connection, original: Callable[[], Awaitable[None]] = original
        ) -> None:
            if not listen_ips:
                await original()
            elif not connection._local_candidates_start:
                connection._local_candidates_start = True
                for component in connection._components:
                    connection._local_candidates += await connection.get_component_candidates(
                        component=component, addresses=list(listen_ips)
                    )
                connection._local_candidates_end = True
            if announced_ip is not None:
                for candidate in connection._local_candidates:
                    if candidate.type == "host":
                        candidate.host = announced_ip

        connection.gather_candidates = gather


# ------------------------------------------- client offers (WHIP/WHEP) ----

_REVERSED = {"sendonly": "recvonly", "recvonly": "sendonly"}


def offered_direction(transceiver: RTCRtpTransceiver) -> str | None:
    """The direction the client's offer gave this m-line, as the client
    sees it ("sendonly": the client sends), after ``setRemoteDescription``."""
    ours: str | None = getattr(transceiver, "_offerDirection", None)
    return _REVERSED.get(ours, ours) if ours is not None else None


def drop_rtx(transceiver: RTCRtpTransceiver) -> None:
    """Answer this m-line of a client's offer without RTX. The receive tap
    drops RTX packets, so a publisher must retransmit in-band (same SSRC
    and payload type), as pages do: the server's own offers name one codec
    and no RTX. Call after ``setRemoteDescription``, before ``createAnswer``."""
    t: Any = transceiver  # aiortc keeps the negotiated codecs in ``_codecs``
    t._codecs = [c for c in t._codecs if not c.mimeType.lower().endswith("/rtx")]


def local_ice_ufrag(pc: RTCPeerConnection) -> str:
    """The server's ICE username fragment (one transport: max-bundle)."""
    for transceiver in pc.getTransceivers():
        gatherer = transceiver.receiver.transport.transport.iceGatherer
        return str(gatherer.getLocalParameters().usernameFragment)
    return ""


def remote_ice_ufrag(pc: RTCPeerConnection) -> str:
    """The client's ICE username fragment, as its offer gave it."""
    for transceiver in pc.getTransceivers():
        connection: Any = transceiver.receiver.transport.transport._connection
        return str(connection.remote_username or "")
    return ""


async def add_remote_candidates(pc: RTCPeerConnection, candidates: list[str], *, end: bool) -> int:
    """Add trickled ``a=candidate`` values (without ``a=candidate:``) to the
    one bundled transport; ``end``: the client has no more. Returns how many
    were taken. Raises ValueError for a candidate that does not parse."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        return 0
    mid = transceivers[0].mid
    parsed = [candidate_from_sdp(c) for c in candidates]
    for candidate in parsed:
        candidate.sdpMid = mid
        await pc.addIceCandidate(candidate)
    if end:
        await pc.addIceCandidate(None)
    return len(parsed)


# --------------------------------------------------------- upstream ----


async def request_keyframe(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send a PLI for ``media_ssrc`` to the publisher."""
    await receiver._send_rtcp_pli(media_ssrc)


def nack_runs(sequence_numbers: list[int]) -> list[list[int]]:
    """``sequence_numbers`` as aiortc's NACK packer needs them: no
    duplicates, ascending, and split where the 16-bit counter wraps (it
    packs ``1 << (seq - first - 1)`` and fails on a duplicate, a step back
    or a wrap: "negative shift count")."""
    unique = sorted({s & 0xFFFF for s in sequence_numbers})
    if len(unique) < 2:
        return [unique] if unique else []
    # the widest jump between neighbours (around the circle) is where the
    # lost packets do not continue: start after it
    n = len(unique)
    widest = max(range(n), key=lambda i: (unique[(i + 1) % n] - unique[i]) & 0xFFFF)
    ordered = unique[widest + 1 :] + unique[: widest + 1]
    runs: list[list[int]] = [[ordered[0]]]
    for seq in ordered[1:]:
        if seq < runs[-1][-1]:  # the counter wrapped
            runs.append([])
        runs[-1].append(seq)
    return runs


async def request_retransmission(
    receiver: RTCRtpReceiver, media_ssrc: int, sequence_numbers: list[int]
) -> None:
    """Forward a NACK upstream to the publisher."""
    for run in nack_runs(sequence_numbers):
        await receiver._send_rtcp_nack(media_ssrc, run)


async def send_remb(receiver: RTCRtpReceiver, bitrate: int, media_ssrcs: list[int]) -> None:
    """Tell the publisher how much to send at most (RTCP REMB) for its streams."""
    r: Any = receiver
    rtcp_ssrc = r._RTCRtpReceiver__rtcp_ssrc
    if rtcp_ssrc is None:
        return
    fci = pack_remb_fci(max(0, int(bitrate)), list(media_ssrcs))
    await r._send_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=fci))


def negotiated_codec(transceiver: RTCRtpTransceiver) -> RTCRtpCodecParameters | None:
    """The codec the remote side will send/receive first (offer order)."""
    for codec in transceiver._codecs:
        if not codec.mimeType.lower().endswith("/rtx"):
            return codec
    return None


def codec_capability(kind: str, mime_type: str, parameters: dict[str, Any]) -> Any:
    """The codec aiortc would offer for ``mime_type`` (for H.264: the same
    packetization mode and profile); ValueError if there is none."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    matches = [c for c in caps if c.mimeType.lower() == mime_type.lower()]
    if mime_type.lower() == "video/h264" and parameters:
        exact = [c for c in matches if _h264_compatible(c, parameters)]
        matches = exact or matches
    if not matches:
        raise ValueError(f"codec {mime_type} is not supported")
    return matches[0]


def codec_key(capability: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Equal for two capabilities that negotiate the same way."""
    params = tuple(sorted((str(k), str(v)) for k, v in capability.parameters.items()))
    return (str(capability.mimeType).lower(), params)


def prefer_codec(
    transceiver: RTCRtpTransceiver, mime_type: str, parameters: dict[str, Any]
) -> None:
    """Offer exactly one codec (no RTX): the one matching ``mime_type`` and,
    for H.264, the same packetization mode and profile."""
    transceiver.setCodecPreferences([codec_capability(transceiver.kind, mime_type, parameters)])


def _h264_compatible(cap: RTCRtpCodecCapability, parameters: dict[str, Any]) -> bool:
    mode = str(parameters.get("packetization-mode", "0"))
    profile = str(parameters.get("profile-level-id", ""))[:4].lower()
    return (
        str(cap.parameters.get("packetization-mode", "0")) == mode
        and str(cap.parameters.get("profile-level-id", ""))[:4].lower() == profile
    )


def depayload(mime_type: str, payload: bytes) -> bytes:
    """The codec bitstream carried by one RTP payload (VP8: without the
    payload descriptor; H.264: Annex B NAL units; Opus: as is)."""
    mime = mime_type.lower()
    if mime == "video/vp8":
        return payload[vp8_descriptor_size(payload) :]
    if mime == "video/h264":
        return bytes(h264_depayload(payload))
    return payload


# ------------------------------------------------------------- sending ----


class IdleTrack(MediaStreamTrack):
    """A track that never yields a frame: it keeps aiortc's own RTP loop for
    a sender parked while Sidecoach writes packets itself."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._stopped = asyncio.Event()

    async def recv(self) -> Any:
        await self._stopped.wait()
        raise MediaStreamError

    def stop(self) -> None:
        self._stopped.set()
        super().stop()


FeedbackHandler = Callable[[str, list[int]], None]
"""Called with ("nack", [sequence numbers]), ("keyframe", []), ("remb",
[bit/s, number of streams it covers]) or ("loss", [fraction lost 0-255])."""


class OutboundRtp:
    """Writes forwarded RTP packets through one ``RTCRtpSender``.

    The sender's SSRC, negotiated payload type and MID header extension are
    applied to every packet; SRTP protection and the UDP write happen
    synchronously, with no task switch and no queue. Video packets carry the
    server's send time (abs-send-time) when negotiated, so the receiver's
    bandwidth estimate measures this leg. aiortc keeps sending RTCP sender
    reports from the counters updated here; NACK, PLI, FIR, REMB and the
    loss in receiver reports go to ``on_feedback``.

    When an m-line is reused, the new writer continues the sequence numbers
    and timestamps of the last one on the same sender (same SSRC): SRTP
    refuses to protect a sequence number it has seen, and receivers take a
    jump backwards for old packets.
    """

    def __init__(
        self, transceiver: RTCRtpTransceiver, on_feedback: FeedbackHandler, *, armed: bool = True
    ) -> None:
        self._transceiver = transceiver
        self._sender: Any = transceiver.sender  # private counters are written below
        self._ready = False
        self._armed = armed
        self._pt = 0
        self._first_byte = 0x80
        self._ext = b""
        self._abs_head = b""  # header extension up to abs-send-time's 3 bytes
        self._abs_tail = b""
        self._ssrc = self._sender._ssrc
        #: the nominated ICE pair and SRTP session (in ``_srtp``) packets go
        #: through, as last seen (a new one is picked up by ``send``)
        self._dtls: Any = None
        self._nominated: dict[int, Any] = {}
        self._pair: Any = None
        self._transport: Any = None
        self._sock: Any = None  # the transport's socket (asyncio's selector transports)
        self._addr: Any = None
        self._srtp: SrtpBuffer | None = None
        sender: Any = self._sender
        previous: OutboundRtp | None = getattr(sender, "_sidecoach_writer", None)
        sender._sidecoach_writer = self
        #: (sequence number, timestamp) last written by the previous writer
        self._continue_from = previous.last_written if previous is not None else None
        self._last: tuple[int, int] | None = self._continue_from
        self._last_seq = self._last_ts = -1  # -1: nothing written by this writer
        self._seq_shift = 0
        self._ts_shift = 0
        self._ts_step = 1
        # a reused m-line gets a new writer: wrap aiortc's handler, not the last writer's
        original_rtcp = getattr(sender, "_sidecoach_rtcp", None)
        if original_rtcp is None:
            original_rtcp = sender._sidecoach_rtcp = sender._handle_rtcp_packet

        async def handle_rtcp(packet: Any) -> None:
            if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
                on_feedback("nack", [(seq - self._seq_shift) & 0xFFFF for seq in packet.lost])
            elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (
                RTCP_PSFB_PLI,
                RTCP_PSFB_FIR,
            ):
                on_feedback("keyframe", [])
            elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                try:
                    bitrate, ssrcs = unpack_remb_fci(packet.fci)
                except ValueError:
                    return
                if self._ssrc in ssrcs:
                    on_feedback("remb", [int(bitrate), len(ssrcs)])
            else:
                if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
                    for report in packet.reports:
                        if report.ssrc == self._ssrc:
                            on_feedback("loss", [report.fraction_lost])
                await original_rtcp(packet)

        sender._handle_rtcp_packet = handle_rtcp
        if not sender._RTCRtpSender__started:
            sender._run_rtcp = functools.partial(_sender_reports, sender)

    @property
    def ssrc(self) -> int:
        return self._ssrc

    def arm(self) -> None:
        """The client has the m-line for this writer: packets may flow."""
        self._armed = True

    def _check_ready(self) -> bool:
        sender = self._sender
        if (
            not self._armed
            or not sender._RTCRtpSender__started
            or sender.transport._state is not DtlsState.CONNECTED
        ):
            return False
        codec = negotiated_codec(self._transceiver)
        if codec is None:
            return False
        self._dtls = sender.transport
        self._nominated = self._dtls.transport._connection._nominated
        self._pt = int(codec.payloadType or 0)
        self._ts_step = max(1, int(codec.clockRate or 90_000) // 50)  # 20 ms
        mid = self._transceiver.mid
        extensions = {e.uri: e.id for e in self._transceiver._headerExtensions}
        ext_id, abs_id = extensions.get(MID_URI), extensions.get(ABS_SEND_TIME_URI)
        if mid is not None and ext_id is not None:
            profile, value = pack_header_extensions([(ext_id, mid.encode("ascii"))])
            assert profile is not None
            self._ext = struct.pack("!HH", profile, len(value) // 4) + value
            self._first_byte = 0x90
            if abs_id is not None and self._transceiver.kind == "video":
                # one-byte elements: mid, then abs-send-time (3 bytes), padded
                elements = bytes([(ext_id << 4) | (len(mid) - 1)]) + mid.encode("ascii")
                elements += bytes([(abs_id << 4) | 2])
                pad = -(len(elements) + 3) % 4
                words = (len(elements) + 3 + pad) // 4
                self._abs_head = struct.pack("!HH", 0xBEDE, words) + elements
                self._abs_tail = b"\x00" * pad
        self._ready = True
        return True

    @property
    def ready(self) -> bool:
        return self._ready or self._check_ready()

    @property
    def last_written(self) -> tuple[int, int] | None:
        """(sequence number, timestamp) of the last packet written on this
        sender, by this writer or the one before it."""
        if self._last_seq >= 0:
            return (self._last_seq, self._last_ts)
        return self._last

    def _attach(self, dtls: Any) -> bool:
        """Send through ``dtls``'s nominated ICE pair and SRTP session."""
        pair = self._nominated.get(ICE_COMPONENT_RTP)
        if pair is None or dtls._tx_srtp is None:
            return False
        self._pair, self._transport, self._addr = pair, pair.protocol.transport, pair.remote_addr
        sock = getattr(self._transport, "_sock", None)
        self._sock = sock if hasattr(self._transport, "_buffer") else None
        self._srtp = SrtpBuffer(dtls._tx_srtp)
        return True

    def _write(self, data: bytes) -> None:
        """``data`` to the ICE pair: straight to its socket when asyncio's
        transport holds nothing back (what its ``sendto`` would do, less a
        layer of checks), else through the transport (it queues or drops)."""
        transport, sock = self._transport, self._sock
        if sock is None or transport._buffer or transport._conn_lost:
            transport.sendto(data, self._addr)
            return
        try:
            sock.sendto(data, self._addr)
        except (BlockingIOError, InterruptedError):
            transport.sendto(data, self._addr)  # queued until the socket can take it
        except OSError as exc:
            transport._protocol.error_received(exc)

    def send(self, packet: RtpPacket, sequence_number: int, timestamp: int) -> bool:
        """Rewrite ``packet`` for this leg and write it; False if the leg is
        not connected (yet, or any more)."""
        if not self._ready and not self._check_ready():
            return False
        dtls = self._dtls
        if dtls._state is not _DTLS_CONNECTED:
            self._ready = False
            return False
        srtp = self._srtp
        if (
            srtp is None
            or self._nominated.get(ICE_COMPONENT_RTP) is not self._pair
            or dtls._tx_srtp is not srtp.session
        ):
            if not self._attach(dtls):
                return False
            srtp = self._srtp
            assert srtp is not None
        if self._continue_from is not None:  # first packet on a reused m-line
            last_seq, last_ts = self._continue_from
            self._continue_from = None
            self._seq_shift = (last_seq + 1 - sequence_number) & 0xFFFF
            self._ts_shift = (last_ts + self._ts_step - timestamp) & 0xFFFFFFFF
        seq = (sequence_number + self._seq_shift) & 0xFFFF
        ts = (timestamp + self._ts_shift) & 0xFFFFFFFF
        payload = packet.payload
        if self._abs_head:
            now = int((time.time() + NTP_UNIX_OFFSET) * 262144) & 0xFFFFFF  # 6.18 fixed point
            ext = self._abs_head + now.to_bytes(3, "big") + self._abs_tail
        else:
            ext = self._ext
        data = srtp.protect_rtp(
            self._first_byte, (packet.marker << 7) | self._pt, seq, ts, self._ssrc, ext, payload
        )
        if data is None:
            return False
        self._write(data)
        self._last_seq, self._last_ts = seq, ts
        sender = self._sender
        sender._RTCRtpSender__packet_count += 1
        sender._RTCRtpSender__octet_count += len(payload)
        return True

    def set_sender_report_mapping(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        """The (NTP, RTP) pair aiortc puts in its next sender report."""
        self._sender._RTCRtpSender__ntp_timestamp = ntp_timestamp
        self._sender._RTCRtpSender__rtp_timestamp = (rtp_timestamp + self._ts_shift) & 0xFFFFFFFF


async def _sender_reports(sender: Any) -> None:
    """In place of ``RTCRtpSender._run_rtcp`` for a sender that forwards:
    a sender report (and the CNAME) every ``SENDER_REPORT_INTERVAL_S``, on
    the loop clock's whole intervals, so the reports of every leg of the
    server go out on one wake-up of the event loop, not each on its own;
    a BYE when stopped, and then the exit ``RTCRtpSender.stop()`` waits for."""
    sender._RTCRtpSender__rtcp_started.set()
    loop = asyncio.get_running_loop()
    try:
        while True:
            wait = SENDER_REPORT_INTERVAL_S - loop.time() % SENDER_REPORT_INTERVAL_S
            await asyncio.sleep(wait if wait > SENDER_REPORT_MIN_WAIT_S else wait + 1.0)
            ntp = sender._RTCRtpSender__ntp_timestamp
            info = RtcpSenderInfo(
                ntp_timestamp=ntp, rtp_timestamp=sender._RTCRtpSender__rtp_timestamp,
                packet_count=sender._RTCRtpSender__packet_count & 0xFFFFFFFF,
                octet_count=sender._RTCRtpSender__octet_count & 0xFFFFFFFF,
            )  # fmt: skip
            packets: list[Any] = [RtcpSrPacket(ssrc=sender._ssrc, sender_info=info)]
            # what the receiver's report echoes (LSR), for aiortc's round-trip time
            sender._RTCRtpSender__lsr = (ntp >> 16) & 0xFFFFFFFF
            sender._RTCRtpSender__lsr_time = time.time()
            cname = sender._RTCRtpSender__cname
            if cname is not None:
                chunk = RtcpSourceInfo(ssrc=sender._ssrc, items=[(RTCP_SDES_CNAME, cname.encode())])
                packets.append(RtcpSdesPacket(chunks=[chunk]))
            await sender._send_rtcp(packets)
    except asyncio.CancelledError:
        pass
    try:
        await sender._send_rtcp([RtcpByePacket(sources=[sender._ssrc])])
    finally:
        sender._RTCRtpSender__rtcp_exited.set()  # RTCRtpSender.stop() waits for it


def current_ntp_time() -> int:
    return int(aiortc_clock.current_ntp_time())
