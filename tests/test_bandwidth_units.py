"""Bandwidth and simulcast pieces on their own: what the server adds to an
offer, VP8 picture-id continuation, a consumer's layer choice from its
receiver's feedback, a layer switch that the receiver sees as one stream,
and the bitrate the server asks of a publisher (REMB)."""

from __future__ import annotations

import asyncio

from aiortc.rtp import RtpPacket

from server.media.bandwidth import upstream_bitrate
from server.media.consumer import Consumer
from server.media.keyframes import Vp8Ids, vp8_keyframe_size
from server.media.layers import Feedback, Layer, LayerChooser
from server.media.offer_sdp import (
    RID_URI,
    OfferExtras,
    answered_simulcast,
    codec_fmtp,
    extend_offer,
    extension_id,
)
from server.media.policy import RECORDER_ROLE, ProducerInfo, Source
from server.media.producer import CodecInfo, Producer
from tests.test_media_units import RecordingWriter

OFFER = "\r\n".join([
    "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0 1 2",
    "m=video 9 UDP/TLS/RTP/SAVPF 97", "c=IN IP4 0.0.0.0", "a=recvonly", "a=mid:0",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid", "a=rtpmap:97 VP8/90000",
    "m=audio 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0", "a=recvonly", "a=mid:1",
    "a=rtpmap:96 opus/48000/2",
    "m=video 9 UDP/TLS/RTP/SAVPF 97", "c=IN IP4 0.0.0.0", "a=sendonly", "a=mid:2",
    "a=rtpmap:97 VP8/90000",
]) + "\r\n"  # fmt: skip


def test_offers_ask_for_simulcast_fec_and_a_cap_where_they_apply() -> None:
    sdp = extend_offer(OFFER, OfferExtras(frozenset({"0"}), max_video_kbps=2500))
    video_in, audio, video_out = sdp.split("m=")[1:]
    assert "a=simulcast:recv l;m;h" in video_in and "a=rid:h recv" in video_in
    assert f"a=extmap:4 {RID_URI}" in video_in and "b=AS:2500" in video_in
    assert "b=TIAS:2500000" in video_in
    assert "simulcast" not in video_out and "b=AS" not in video_out  # what we send
    assert codec_fmtp(sdp, "audio", "opus") == [{"minptime": "10", "useinbandfec": "1"}]
    # an fmtp already there keeps its parameters and gains the missing ones
    again = extend_offer(sdp.replace("minptime=10;", "stereo=1;"), OfferExtras())
    assert codec_fmtp(again, "audio", "opus") == [
        {"stereo": "1", "useinbandfec": "1", "minptime": "10"}
    ]
    assert "simulcast" not in extend_offer(OFFER, OfferExtras())


def test_answers_say_which_layers_the_client_sends() -> None:
    answer = "\r\n".join([
        "m=video 9 UDP/TLS/RTP/SAVPF 97", "a=mid:0", f"a=extmap:10 {RID_URI}",
        "a=rid:l send", "a=rid:m send", "a=rid:h send", "a=simulcast:send l;m;~h",
        "m=video 9 UDP/TLS/RTP/SAVPF 97", "a=mid:2", "a=simulcast:send h",
    ])  # fmt: skip
    assert answered_simulcast(answer) == {"0": ("l", "m", "h")}  # one layer is no simulcast
    assert extension_id(answer, RID_URI) == 10
    assert extension_id(answer, "urn:nothing") is None


def vp8_payload(picture_id: int, tl0: int, keyframe: bool) -> bytes:
    # X, S; I L T; 15-bit picture id; TL0PICIDX; TID; VP8 header (+ keyframe start code)
    header = bytes([0x90, 0xE0, 0x80 | (picture_id >> 8), picture_id & 0xFF, tl0, 0x20])
    vp8 = bytes([0x10 if keyframe else 0x11, 0x02, 0x00])
    if keyframe:
        vp8 += b"\x9d\x01\x2a" + (320).to_bytes(2, "little") + (180).to_bytes(2, "little")
    return header + vp8


def test_vp8_ids_are_read_and_moved_on_modulo_their_size() -> None:
    ids = Vp8Ids(vp8_payload(0x7FFE, 255, True))
    assert (ids.picture_id, ids.picture_id_bits, ids.tl0) == (0x7FFE, 15, 255)
    moved = Vp8Ids(ids.rewrite(vp8_payload(0x7FFE, 255, True), 3, 2))
    assert (moved.picture_id, moved.tl0) == (1, 1)
    assert vp8_keyframe_size(vp8_payload(5, 1, True)) == (320, 180)
    assert vp8_keyframe_size(vp8_payload(5, 1, False)) is None


def flowing(layer: Layer, bps: float, now: float) -> None:
    """``layer`` has sent ``bps`` for the last two seconds, until ``now``."""
    layer.packets, layer.last_packet_at = 1, now
    for k in range(20):
        layer.meter.add(int(bps / 8 / 10), now + 0.01 - k * 0.1)  # 20 buckets up to now


def layers_at(now: float, rates: list[float]) -> list[Layer]:
    layers = [Layer(i, "lmh"[i], 64) for i in range(len(rates))]
    for layer, bps in zip(layers, rates, strict=True):
        if bps:
            flowing(layer, bps, now)
    return layers


def test_a_consumer_goes_down_on_a_low_estimate_or_loss_and_up_after_a_clean_hold() -> None:
    def layers(t: float) -> list[Layer]:
        return layers_at(t, [150_000, 500_000, 1_500_000])

    def feedback(t: float, estimate: int | None = 300_000, loss: float = 0.0) -> Feedback:
        return Feedback(estimate, t, loss, t)

    now = 100.0
    chooser = LayerChooser(2)
    assert chooser.choose(layers(now), Feedback(), now) == 2  # nothing known: the best
    assert chooser.choose(layers(now), feedback(now), now) == 0  # 300 kbit/s: the largest fit
    assert chooser.choose(layers(now + 1), feedback(now + 1), now + 1) == 0  # held
    t = now + LayerChooser.UP_HOLD_MIN_S
    assert chooser.choose(layers(t), feedback(t), t) == 1  # a probe: one layer up
    # during the probe the estimate (still what l allowed) does not end it...
    assert chooser.choose(layers(t + 1), feedback(t + 1), t + 1) == 1
    # ...loss does
    assert chooser.choose(layers(t + 2), feedback(t + 2, loss=0.3), t + 2) == 0
    # the failed probe doubled the hold: no try when the first hold is over
    t2 = t + 2 + LayerChooser.UP_HOLD_MIN_S
    assert chooser.choose(layers(t2), feedback(t2), t2) == 0
    t3 = t + 2 + 2 * LayerChooser.UP_HOLD_MIN_S
    assert chooser.choose(layers(t3), feedback(t3), t3) == 1
    # a layer the publisher stopped sending is never chosen; the Recorder takes the best
    quiet = layers_at(now, [150_000, 500_000, 0])
    assert LayerChooser(2).choose(quiet, Feedback(), now) == 1
    assert LayerChooser(2, always_top=True).choose(layers(now), feedback(now), now) == 2


def make_simulcast(upstream: list[str]) -> Producer:
    async def pli(ssrc: int) -> None:
        upstream.append(f"pli {ssrc}")

    async def nack(ssrc: int, seqs: list[int]) -> None:
        upstream.append(f"nack {ssrc} {seqs}")

    async def remb(bitrate: int, ssrcs: list[int]) -> None:
        upstream.append(f"remb {bitrate}")

    info = ProducerInfo("t-1", "p-1", "teacher", Source.CAMERA, "video")
    return Producer(
        info, CodecInfo("video/VP8", 90000), request_keyframe=pli, request_nack=nack,
        keyframe_min_interval_ms=0, cache_size=64, rids=("l", "m", "h"), send_remb=remb,
        max_bitrate_bps=2_500_000,
    )  # fmt: skip


def vp8_packet(ssrc: int, seq: int, ts: int, pid: int, keyframe: bool, rid: str) -> RtpPacket:
    p = RtpPacket(payload_type=97, sequence_number=seq, timestamp=ts, ssrc=ssrc, marker=1)
    p.payload = vp8_payload(pid, pid & 0xFF, keyframe)
    return p


async def test_a_layer_switch_is_one_continuous_stream_for_the_receiver() -> None:
    upstream: list[str] = []
    producer = make_simulcast(upstream)
    consumer = Consumer("c-1", producer, "p-2")
    writer = RecordingWriter()
    consumer.bind(writer)
    producer.add_consumer(consumer)
    streams = {"l": (111, 1000, 5000), "h": (333, 40000, 900000)}  # ssrc, seq, ts bases

    def frame(rid: str, n: int, keyframe: bool = False) -> None:
        ssrc, seq, ts = streams[rid]
        producer.on_packet(
            vp8_packet(ssrc, seq + n, ts + n * 3000, 100 * len(rid) + n, keyframe, rid), None, rid
        )

    frame("h", 0, keyframe=True)
    frame("l", 0, keyframe=True)
    frame("h", 1)
    frame("l", 1)
    assert len(writer.sent) == 2 and consumer.current_layer == 2  # only the wanted layer
    consumer.chooser.target = 0  # e.g. the receiver's link got thin
    frame("h", 2)
    frame("l", 2)  # not a keyframe: keep forwarding h, ask l for one
    await asyncio.sleep(0)
    assert consumer.current_layer == 2 and "pli 111" in upstream
    frame("l", 3, keyframe=True)
    frame("h", 3)
    frame("l", 4)
    assert consumer.current_layer == 0 and consumer.layer_switches == 1
    seqs = [s for s, _, _ in writer.sent]
    stamps = [t for _, t, _ in writer.sent]
    pids = [Vp8Ids(p).picture_id for _, _, p in writer.sent]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    assert all(
        0 < (b - a) & 0xFFFFFFFF < 0x80000000 for a, b in zip(stamps, stamps[1:], strict=False)
    )
    assert all((b - a) & 0x7FFF == 1 for a, b in zip(pids, pids[1:], strict=False))  # type: ignore[operator]
    # a NACK from before the switch is answered from the old layer's cache
    writer.sent.clear()
    consumer.on_feedback("nack", [seqs[1], seqs[-1]])
    assert [s for s, _, _ in writer.sent] == [seqs[1], seqs[-1]]
    assert [Vp8Ids(p).picture_id for _, _, p in writer.sent] == [pids[1], pids[-1]]
    await producer.close()


async def test_the_publisher_is_asked_for_what_consumers_use() -> None:
    upstream: list[str] = []
    producer = make_simulcast(upstream)
    now = producer.packet_time = 50.0
    for layer, bps in zip(producer.layers, (150_000, 500_000, 1_500_000), strict=True):
        layer.ssrc = 1 + layer.index
        flowing(layer, bps, now)
    thin, fine = (Consumer(f"c-{n}", producer, f"p-{n}") for n in (1, 2))
    for c in (thin, fine):
        producer.consumers[c.id] = c
    # everyone takes the best: the cap, at once (a browser starts at it)
    assert upstream_bitrate(producer, now) == 2_500_000
    thin.chooser.target = 0
    assert upstream_bitrate(producer, now) == 2_500_000  # another consumer still takes h
    fine.chooser.target = 0
    # nobody takes h: l and m (for a probe), with room; the publisher drops h
    assert upstream_bitrate(producer, now) == round(650_000 * 1.25)
    producer.remb_bps = round(650_000 * 1.25)  # sent
    fine.chooser.target = 2
    assert upstream_bitrate(producer, now) == 2_500_000  # h again: the cap lifts that REMB
    recorder = Consumer("c-r", producer, "recorder", RECORDER_ROLE)
    producer.consumers[recorder.id] = recorder
    assert upstream_bitrate(producer, now) == 2_500_000  # the recording keeps every layer
    await producer.close()

    # one stream: the thinnest viewer's REMB (the Recorder has none)
    single, _ = make_single()
    a, b = Consumer("c-a", single, "p-a"), Consumer("c-b", single, "p-b")
    single.consumers.update({a.id: a, b.id: b})
    a.on_feedback("remb", [400_000, 1])
    b.on_feedback("remb", [2_000_000, 2])  # its REMB covers two streams
    assert upstream_bitrate(single, a.feedback.estimate_at) == 400_000
    # a single stream gets no first REMB for nothing (aiortc's encoder
    # restarts on each new value)
    a.feedback.estimate_bps = b.feedback.estimate_bps = None
    assert upstream_bitrate(single, a.feedback.estimate_at) is None
    await single.close()


def make_single() -> tuple[Producer, list[str]]:
    upstream: list[str] = []

    async def noop(*args: object) -> None:
        upstream.append(str(args))

    info = ProducerInfo("t-2", "p-1", "teacher", Source.CAMERA, "video")
    producer = Producer(
        info, CodecInfo("video/H264", 90000), request_keyframe=noop, request_nack=noop,
        keyframe_min_interval_ms=0, cache_size=64, send_remb=noop, max_bitrate_bps=3_000_000,
    )  # fmt: skip
    return producer, upstream
