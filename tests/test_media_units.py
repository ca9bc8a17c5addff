"""The SFU's pieces on their own: keyframe detection, the NACK cache,
sequence rewriting, keyframe-request coalescing."""

from __future__ import annotations

import asyncio

from aiortc.rtp import RTCP_RTPFB_NACK, RtcpRtpfbPacket, RtpPacket

from server.media.consumer import Consumer
from server.media.keyframes import starts_keyframe
from server.media.packet_cache import PacketCache
from server.media.policy import ProducerInfo, Source
from server.media.producer import CodecInfo, Producer


class RecordingWriter:
    """A PacketWriter that keeps what it was given (as the Recorder will)."""

    def __init__(self) -> None:
        self.ready = True
        self.sent: list[tuple[int, int, bytes]] = []

    def send(self, packet: RtpPacket, sequence_number: int, timestamp: int) -> bool:
        if not self.ready:
            return False
        self.sent.append((sequence_number, timestamp, packet.payload))
        return True

    def set_sender_report_mapping(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        pass


def make_producer(kind: str = "audio", mime: str = "audio/opus") -> tuple[Producer, list[str]]:
    upstream: list[str] = []

    async def pli(ssrc: int) -> None:
        upstream.append(f"pli {ssrc}")

    async def nack(ssrc: int, seqs: list[int]) -> None:
        upstream.append(f"nack {ssrc} {seqs}")

    info = ProducerInfo(
        "t-1", "p-1", "teacher", Source.MIC if kind == "audio" else Source.CAMERA, kind
    )
    producer = Producer(
        info,
        CodecInfo(mime, 48000 if kind == "audio" else 90000),
        request_keyframe=pli,
        request_nack=nack,
        keyframe_min_interval_ms=200,
        cache_size=64,
    )
    return producer, upstream


def packet(seq: int, payload: bytes = b"\x10\x00\x00", ts: int = 0) -> RtpPacket:
    p = RtpPacket(payload_type=96, sequence_number=seq & 0xFFFF, timestamp=ts, ssrc=1234)
    p.payload = payload
    return p


def attach(producer: Producer) -> tuple[Consumer, RecordingWriter]:
    consumer = Consumer("c-1", producer, "p-2")
    writer = RecordingWriter()
    consumer.bind(writer)
    producer.add_consumer(consumer)
    return consumer, writer


def test_vp8_keyframe_detection() -> None:
    # S=1, PID=0, no extension; VP8 header P bit 0 => keyframe
    assert starts_keyframe("video/VP8", bytes([0x10, 0x00]))
    assert not starts_keyframe("video/VP8", bytes([0x10, 0x01]))  # interframe
    assert not starts_keyframe("video/VP8", bytes([0x00, 0x00]))  # not a partition start
    # X=1 with I (15-bit picture id), L, T
    assert starts_keyframe("video/VP8", bytes([0x90, 0xE0, 0x81, 0x23, 0x05, 0x40, 0x9C]))
    assert not starts_keyframe("video/VP8", bytes([0x90, 0xE0, 0x81, 0x23, 0x05, 0x40, 0x9D]))
    assert not starts_keyframe("video/VP8", b"")


def test_h264_keyframe_detection() -> None:
    assert starts_keyframe("video/H264", bytes([0x65, 0x88]))  # IDR
    assert starts_keyframe("video/H264", bytes([0x67, 0x42]))  # SPS
    assert not starts_keyframe("video/H264", bytes([0x41, 0x9A]))  # non-IDR slice
    stap = bytes([0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xCE])
    assert starts_keyframe("video/H264", stap)
    assert starts_keyframe("video/H264", bytes([0x7C, 0x85, 0x00]))  # FU-A start of IDR
    assert not starts_keyframe("video/H264", bytes([0x7C, 0x05, 0x00]))  # FU-A middle
    assert starts_keyframe("audio/opus", b"\x01")  # never hold back what we cannot read


def test_packet_cache_answers_only_exact_sequence_numbers() -> None:
    cache = PacketCache(8)
    for seq in range(65530, 65536 + 4):
        cache.put(packet(seq))
    assert cache.get(65535) is not None and cache.get(65535).sequence_number == 65535  # type: ignore[union-attr]
    assert cache.get(2) is not None
    assert cache.get(65528) is None  # overwritten by a newer packet in the same slot


async def test_consumer_sequence_numbers_are_gapless_across_a_pause() -> None:
    producer, _ = make_producer()
    _, writer = attach(producer)
    for seq in range(100, 105):
        producer.on_packet(packet(seq), None)  # type: ignore[arg-type]
    producer.pause()
    for seq in range(105, 150):
        producer.on_packet(packet(seq), None)  # type: ignore[arg-type]
    producer.resume()
    for seq in range(150, 153):
        producer.on_packet(packet(seq), None)  # type: ignore[arg-type]
    out = [s for s, _, _ in writer.sent]
    assert len(out) == 8
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(out, out[1:], strict=False))
    await producer.close()


async def test_nack_is_answered_from_the_cache_and_the_rest_goes_upstream() -> None:
    producer, upstream = make_producer()  # a cache of 64 packets
    consumer, writer = attach(producer)
    for seq in range(10, 100):
        producer.on_packet(packet(seq, payload=bytes([seq])), None)  # type: ignore[arg-type]
    out = {payload[0]: s for s, _, payload in writer.sent}
    writer.sent.clear()
    # 95 and 96 are still cached; 12 was overwritten long ago
    consumer.on_feedback("nack", [out[95], out[96], out[12]])
    assert [(s, p) for s, _, p in writer.sent] == [(out[95], b"\x5f"), (out[96], b"\x60")]
    await asyncio.sleep(0)
    assert upstream == ["nack 1234 [12]"]
    # a sequence number this consumer never sent is nobody's to resend
    consumer.on_feedback("nack", [(out[10] - 5) & 0xFFFF])
    await asyncio.sleep(0)
    assert upstream == ["nack 1234 [12]"] and len(writer.sent) == 2
    await producer.close()


async def test_nacks_go_upstream_in_the_order_aiortc_can_pack() -> None:
    """A receiver's NACK around a sequence wrap maps back out of order;
    aiortc packs only an ascending list (it raised on this one)."""
    producer, upstream = make_producer()
    producer.on_packet(packet(5), None)  # type: ignore[arg-type]
    producer.request_retransmission(producer.layers[0], [3, 65535, 1, 3])
    await asyncio.sleep(0)
    assert upstream == ["nack 1234 [1, 3, 65535]"]
    nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=1234, lost=[1, 3, 65535])
    assert RtcpRtpfbPacket.parse(bytes(nack)[4:], 1).lost == [1, 3, 65535]
    await producer.close()


async def test_keyframe_requests_are_coalesced_but_not_lost() -> None:
    producer, upstream = make_producer("video", "video/VP8")
    producer.on_packet(packet(1), None)  # type: ignore[arg-type]  # learn the SSRC
    for _ in range(20):
        producer.request_keyframe()
    await asyncio.sleep(0.05)
    assert upstream == ["pli 1234"]
    await asyncio.sleep(0.25)  # the deferred one fires at the end of the interval
    assert upstream == ["pli 1234", "pli 1234"]
    await producer.close()
    producer.request_keyframe()
    await asyncio.sleep(0.25)
    assert len(upstream) == 2  # closed producers ask for nothing


async def test_new_video_consumer_waits_for_a_keyframe() -> None:
    producer, upstream = make_producer("video", "video/VP8")
    producer.on_packet(packet(1, payload=bytes([0x10, 0x00])), None)  # type: ignore[arg-type]
    _, writer = attach(producer)
    producer.on_packet(packet(2, payload=bytes([0x10, 0x01])), None)  # type: ignore[arg-type]
    producer.on_packet(packet(3, payload=bytes([0x00, 0x01])), None)  # type: ignore[arg-type]
    assert writer.sent == []
    producer.on_packet(packet(4, payload=bytes([0x10, 0x00])), None)  # type: ignore[arg-type]
    producer.on_packet(packet(5, payload=bytes([0x00, 0x01])), None)  # type: ignore[arg-type]
    assert [p for _, _, p in writer.sent] == [bytes([0x10, 0x00]), bytes([0x00, 0x01])]
    await asyncio.sleep(0)
    assert upstream and upstream[0].startswith("pli")
    await producer.close()


async def test_video_after_a_stall_resumes_at_the_keyframe_without_a_sequence_gap() -> None:
    """The teacher's link was cut: what it sent meanwhile is gone, and a
    receiver that saw the sequence gap would wait for it (an aiortc coach
    froze for seconds). The coach gets nothing until the keyframe asked
    for, then a stream without a gap; the one deferred request the waiting
    consumer made is answered by that keyframe, not sent again."""
    producer, upstream = make_producer("video", "video/VP8")
    _, writer = attach(producer)
    key, delta, more = bytes([0x10, 0x00]), bytes([0x10, 0x01]), bytes([0x00, 0x01])
    for seq, payload in ((1, key), (2, more), (3, delta), (4, delta)):
        producer.on_packet(packet(seq, payload, ts=seq * 3000), None)  # type: ignore[arg-type]
    assert len(writer.sent) == 4
    await asyncio.sleep(0.6)  # the link is cut (a stall is 0.5 s)
    plis = len(upstream)
    producer.on_packet(packet(200, delta, ts=200 * 3000), None)  # type: ignore[arg-type]
    producer.on_packet(packet(150, delta, ts=150 * 3000), None)  # type: ignore[arg-type]
    assert len(writer.sent) == 4  # nothing that cannot be decoded
    for seq, payload in ((201, key), (202, more), (203, delta)):
        producer.on_packet(packet(seq, payload, ts=seq * 3000), None)  # type: ignore[arg-type]
    seqs = [s for s, _, _ in writer.sent]
    assert [p for _, _, p in writer.sent[4:]] == [key, more, delta]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    stamps = [t for _, t, _ in writer.sent]
    assert (stamps[4] - stamps[3]) & 0xFFFFFFFF == (201 - 4) * 3000  # the time that passed
    await asyncio.sleep(0.3)
    assert len(upstream) == plis + 1 and upstream[-1] == "pli 1234"
    await producer.close()
