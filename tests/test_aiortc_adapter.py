"""The adapter over aiortc internals, against the pinned aiortc: if an
upgrade moves a private name, these fail first."""

from __future__ import annotations

import aiortc
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtp import RtpPacket

from server.media import aiortc_adapter as adapter
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
