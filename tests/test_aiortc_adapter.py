"""The adapter over aiortc internals, against the pinned aiortc: if an
upgrade moves a private name, these fail first."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import aiortc
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcdtlstransport import SRTP_PROFILES
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from hypothesis import given
from hypothesis import strategies as st
from pylibsrtp import Policy, Session

from server.media import aiortc_adapter as adapter
from server.media.aiortc_adapter import MID_URI
from server.media.aiortc_receive import SrtpBuffer, parse_rtp, read_all_ready
from testkit.peers import PatternVideoTrack, wait_for


def candidates(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


def test_pinned_version() -> None:
    assert aiortc.__version__ == adapter.PINNED_AIORTC


async def test_restrict_ice_gathers_on_loopback_and_announces() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio", direction="recvonly")
        adapter.restrict_ice(pc, ("127.0.0.1",), "203.0.113.7")
        await pc.setLocalDescription(await pc.createOffer())
        found = candidates(pc.localDescription.sdp)
        assert found, "no candidates gathered"
        assert all(" 203.0.113.7 " in c and " typ host" in c for c in found)
    finally:
        await pc.close()

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("video", direction="recvonly")
        adapter.restrict_ice(pc, ("127.0.0.1",), None)
        await pc.setLocalDescription(await pc.createOffer())
        found = candidates(pc.localDescription.sdp)
        assert found and all(" 127.0.0.1 " in c for c in found)
    finally:
        await pc.close()


async def test_tap_sees_packets_and_aiortc_decodes_nothing() -> None:
    sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    seen: list[RtpPacket] = []
    reports: list[int] = []
    try:
        sender.addTrack(PatternVideoTrack())
        adapter.restrict_ice(sender, ("127.0.0.1",), None)
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        transceiver = receiver.getTransceivers()[0]
        adapter.tap_receiver(
            transceiver.receiver,
            lambda p, codec, rid: seen.append(p),
            lambda ssrc, ntp, rtp: reports.append(ssrc),
        )
        adapter.restrict_ice(receiver, ("127.0.0.1",), None)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        await wait_for(lambda: len(seen) > 30 and reports, timeout=10)
        inner = transceiver.receiver
        assert inner._RTCRtpReceiver__decoder_thread is None  # type: ignore[attr-defined]
        # no decoded frame was ever queued (only the decoder's end-of-stream marker)
        assert [f for f in inner.track._queue._queue if f is not None] == []
        assert adapter.negotiated_codec(transceiver).mimeType == "video/VP8"  # type: ignore[union-attr]
        stats = await inner.getStats()
        assert any(s.type == "inbound-rtp" and s.packetsReceived > 0 for s in stats.values())
    finally:
        await sender.close()
        await receiver.close()


async def test_tapped_packets_are_handled_as_their_datagram_arrives() -> None:
    """After a stream's first packets (aiortc's way: its SSRC is learned),
    the tap gets each packet from the socket's read callback, not from the
    DTLS transport's task a turn of the event loop later."""
    sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    in_task: list[bool] = []
    try:
        sender.addTrack(PatternVideoTrack())
        adapter.restrict_ice(sender, ("127.0.0.1",), None)
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        transceiver = receiver.getTransceivers()[0]
        adapter.tap_receiver(
            transceiver.receiver,
            lambda p, codec, rid: in_task.append(asyncio.current_task() is not None),
            lambda ssrc, ntp, rtp: None,
        )
        adapter.restrict_ice(receiver, ("127.0.0.1",), None)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        await wait_for(lambda: len(in_task) > 60, timeout=10)
        assert in_task[0], "the first packet comes through aiortc"
        assert not any(in_task[-30:]), "later packets come straight from the socket"
        stats = await transceiver.receiver.getStats()
        assert any(s.type == "inbound-rtp" and s.packetsReceived >= 60 for s in stats.values())
    finally:
        await sender.close()
        await receiver.close()


def test_srtp_buffer_protects_in_place_and_refuses_a_replay() -> None:
    profile = SRTP_PROFILES[0]
    key = os.urandom(profile.key_length + profile.salt_length)

    def session(direction: int) -> Session:
        return Session(Policy(key=key, ssrc_type=direction, srtp_profile=profile.libsrtp_profile))

    out = SrtpBuffer(session(Policy.SSRC_ANY_OUTBOUND))
    inbound = SrtpBuffer(session(Policy.SSRC_ANY_INBOUND))
    extension = b"\xbe\xde\x00\x01\x10\x30\x00\x00"  # one-byte elements: mid "0", padding
    payload = os.urandom(900)
    protected = out.protect_rtp(0x90, 0x80 | 96, 7, 1234, 0xCAFE, extension, payload)
    assert protected is not None and payload not in protected
    plain = inbound.unprotect(protected)
    assert plain is not None
    packet = RtpPacket.parse(plain)
    assert (packet.marker, packet.payload_type, packet.sequence_number) == (1, 96, 7)
    assert (packet.timestamp, packet.ssrc, packet.payload) == (1234, 0xCAFE, payload)
    assert inbound.unprotect(protected) is None  # a replay
    assert out.protect_rtp(0x80, 96, 7, 1234, 0xCAFE, b"", payload) is None  # seq 7 again
    assert out.protect_rtp(0x80, 96, 8, 1234, 0xCAFE, b"", b"x" * 4000) is None  # too long


@given(
    marker=st.integers(0, 1), payload_type=st.integers(0, 127), seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF), ssrc=st.integers(0, 0xFFFFFFFF),
    mid=st.none() | st.sampled_from(["0", "1", "video"]), payload=st.binary(max_size=40),
    padding=st.integers(0, 5), csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=2),
    cut=st.none() | st.integers(0, 80),
)  # fmt: skip
def test_parse_rtp_reads_what_aiortc_reads(
    marker: int, payload_type: int, seq: int, ts: int, ssrc: int, mid: str | None,
    payload: bytes, padding: int, csrc: list[int], cut: int | None,
) -> None:  # fmt: skip
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=4, uri=MID_URI)])
    )
    packet = RtpPacket(payload_type=payload_type, marker=marker, sequence_number=seq,
                       timestamp=ts, ssrc=ssrc, payload=payload)  # fmt: skip
    packet.extensions.mid, packet.padding_size, packet.csrc = mid, padding, csrc
    data = packet.serialize(extensions)[:cut]

    def read(parse: Any) -> Any:
        try:
            p = parse(data, extensions)
        except ValueError:
            return "malformed"
        return (p.marker, p.payload_type, p.sequence_number, p.timestamp, p.ssrc, p.payload)

    assert read(parse_rtp) == read(RtpPacket.parse)


async def test_a_socket_is_read_until_empty_per_wake_up() -> None:
    received: list[bytes] = []

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            received.append(data)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        try:
            await asyncio.sleep(0)  # the transport starts reading
            read_all_ready(transport)
            for i in range(6):
                out.sendto(bytes([i]), transport.get_extra_info("sockname"))
            for _ in range(2):  # asyncio alone reads one datagram per turn
                await asyncio.sleep(0)
            assert received == [bytes([i]) for i in range(6)]
        finally:
            transport.close()


async def test_a_forwarding_sender_reports_on_the_whole_second_and_stops() -> None:
    server, client = adapter.new_peer_connection(), adapter.new_peer_connection()
    reports: list[float] = []
    try:
        transceiver = server.addTransceiver(adapter.IdleTrack("video"), direction="sendonly")
        adapter.OutboundRtp(transceiver, lambda kind, values: None)
        adapter.restrict_ice(server, ("127.0.0.1",), None)
        await server.setLocalDescription(await server.createOffer())
        await client.setRemoteDescription(server.localDescription)
        loop = asyncio.get_running_loop()
        adapter.tap_receiver(
            client.getTransceivers()[0].receiver,
            lambda p, codec, rid: None,
            lambda ssrc, ntp, rtp: reports.append(loop.time()),
        )
        adapter.restrict_ice(client, ("127.0.0.1",), None)
        await client.setLocalDescription(await client.createAnswer())
        await server.setRemoteDescription(client.localDescription)
        await wait_for(lambda: len(reports) >= 2, timeout=10)
        assert reports[1] - reports[0] > 0.5  # one a second, not a burst
        await asyncio.wait_for(server.close(), 5)  # RTCRtpSender.stop() sees the loop end
    finally:
        await server.close()
        await client.close()
