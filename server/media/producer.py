"""Producer: one incoming track. Every RTP packet is handed to each of its
Consumers as it arrives: no queue, no jitter buffer, no decode.

A track is one RTP stream, or (a browser camera with simulcast) several,
one ``Layer`` per resolution; each Consumer forwards the layer its
receiver's link can take. Once a second a video Producer lets each
Consumer choose its layer again and tells the publisher, in an RTCP REMB,
how much it should send (server/media/bandwidth.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from server.core.tasks import TaskOwner
from server.media.aiortc_adapter import current_ntp_time
from server.media.bandwidth import upstream_bitrate
from server.media.consumer import Consumer
from server.media.keyframes import starts_keyframe, vp8_keyframe_size
from server.media.layers import Layer
from server.media.policy import ProducerInfo

logger = logging.getLogger(__name__)

#: video that resumes after this long without a packet (a network cut, a
#: frozen publisher) gets a keyframe request at once: what follows a gap
#: cannot be decoded, and consumers would each notice that later
STALL_KEYFRAME_S = 0.5
#: how often layers are chosen again and the publisher is told its bitrate
FEEDBACK_INTERVAL_S = 1.0
#: a REMB upstream when the bitrate moves by more than this fraction...
REMB_CHANGE = 0.15
#: ...or this long after the last one
REMB_REFRESH_S = 5.0

#: send a PLI (ssrc) / a NACK (ssrc, sequence numbers) / a REMB (bit/s,
#: ssrcs) upstream to the publisher
KeyframeRequester = Callable[[int], Coroutine[Any, Any, None]]
NackRequester = Callable[[int, list[int]], Coroutine[Any, Any, None]]
RembRequester = Callable[[int, list[int]], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class CodecInfo:
    mime_type: str
    clock_rate: int
    channels: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_aiortc(cls, codec: RTCRtpCodecParameters) -> CodecInfo:
        return cls(codec.mimeType, codec.clockRate, codec.channels, dict(codec.parameters))


class Producer:
    def __init__(
        self,
        info: ProducerInfo,
        codec: CodecInfo,
        *,
        request_keyframe: KeyframeRequester,
        request_nack: NackRequester,
        keyframe_min_interval_ms: int,
        cache_size: int,
        rids: tuple[str, ...] = (),
        send_remb: RembRequester | None = None,
        max_bitrate_bps: int | None = None,
    ) -> None:
        self.info = info
        self.codec = codec
        #: one per RTP stream, lowest resolution first (one unless simulcast)
        self.layers = [Layer(i, rid, cache_size) for i, rid in enumerate(rids)] or [
            Layer(0, None, cache_size)
        ]
        self.simulcast = len(self.layers) > 1
        self._by_ssrc: dict[int, Layer] = {}
        self._by_rid = {layer.rid: layer for layer in self.layers if layer.rid}
        self.consumers: dict[str, Consumer] = {}
        self.packets_received = 0
        #: packets of an RTP stream no layer is known for (dropped)
        self.packets_unknown = 0
        #: arrival time (monotonic) of the packet being forwarded
        self.packet_time = 0.0
        self.first_packet_at = 0.0
        self._last_packet_at = 0.0
        self._send_remb = send_remb
        self.max_bitrate_bps = max_bitrate_bps
        #: the last bitrate sent to the publisher (REMB), and how many were sent
        self.remb_bps: int | None = None
        self._remb_at = 0.0
        self.rembs_sent = 0
        #: packets that arrived while paused (push-to-talk released): dropped
        self.packets_gated = 0
        self.closed = False
        self._paused = info.gated
        #: times this producer was paused (push-to-talk released): silence
        #: across a pause is not a gap in the media
        self.pauses = 0
        self._send_pli = request_keyframe
        self._send_nack = request_nack
        self._kf_interval = keyframe_min_interval_ms / 1000
        self._kf_last = -1e9
        self._kf_timer: asyncio.TimerHandle | None = None
        self._kf_layers: set[int] = set()
        self.keyframes_requested = 0
        #: read by /metrics at scrape time (server/node_metrics.py)
        self.bytes_received = 0
        self.nacks_sent = 0
        #: sequence numbers asked of the publisher again (its cache missed them)
        self.nacks_upstream = 0
        self._kf_checked_packet: RtpPacket | None = None
        self._kf_checked = False
        self._tasks = TaskOwner(f"producer {info.producer_id}")
        self._on_close: list[Callable[[Producer], None]] = []
        self._log = logging.LoggerAdapter(
            logger, {"producer": info.producer_id, "participant": info.participant_id}
        )
        if info.kind == "video":
            self._tasks.spawn(self._feedback_loop(), name=f"feedback {info.producer_id}")

    @property
    def id(self) -> str:
        return self.info.producer_id

    @property
    def kind(self) -> str:
        return self.info.kind

    # -- packets --------------------------------------------------------

    def on_packet(
        self, packet: RtpPacket, codec: RTCRtpCodecParameters | None, rid: str | None = None
    ) -> None:
        """Called by the receive tap for every packet, synchronously;
        ``rid`` names the simulcast layer when the packet carries it."""
        if self._paused:
            self.packets_gated += 1
            return
        if self.closed:
            return
        layer = self._by_ssrc.get(packet.ssrc)
        if layer is None:
            layer = self._learn_stream(packet.ssrc, rid)
            if layer is None:
                self.packets_unknown += 1
                return
        now = time.monotonic()
        self.packet_time = now
        if not self.packets_received:
            self.first_packet_at = now
        self.packets_received += 1
        self.bytes_received += len(packet.payload)
        if now - self._last_packet_at > STALL_KEYFRAME_S and self.packets_received > 1:
            # media resumes after a stall: consumers wait for a keyframe
            for consumer in self.consumers.values():
                consumer.after_stall()
            self.request_keyframe()
        self._last_packet_at = now
        if packet.payload:  # padding alone (a publisher probing) is not media
            layer.packets += 1
            layer.last_packet_at = now
            layer.meter.add(len(packet.payload) + 12, now)
        layer.cache.put(packet)
        if self._kf_timer is not None and self.keyframe_starts_at(packet):
            self._keyframe_arrived(layer.index)
        if layer.sr_mapping is None:
            # until the publisher's first sender report, map by arrival time
            self._set_mapping(layer, current_ntp_time(), packet.timestamp)
        if self.simulcast and self.keyframe_starts_at(packet):
            size = vp8_keyframe_size(packet.payload)
            if size is not None:
                layer.width, layer.height = size
        for consumer in self.consumers.values():
            consumer.forward(packet, layer)

    def _learn_stream(self, ssrc: int, rid: str | None) -> Layer | None:
        """The layer a new SSRC belongs to: by its rid, or the only one."""
        if rid is not None:
            layer = self._by_rid.get(rid)
        else:
            layer = None if self.simulcast else self.layers[0]
        if layer is None:
            return None
        if layer.ssrc is not None:  # the publisher started a new stream for it
            self._by_ssrc.pop(layer.ssrc, None)
            for consumer in self.consumers.values():
                consumer.restart(layer)
        layer.ssrc = ssrc
        layer.sr_mapping = None
        self._by_ssrc[ssrc] = layer
        return layer

    def keyframe_starts_at(self, packet: RtpPacket) -> bool:
        """Whether ``packet`` starts a keyframe (computed once per packet,
        however many consumers ask)."""
        if packet is not self._kf_checked_packet:
            self._kf_checked_packet = packet
            self._kf_checked = starts_keyframe(self.codec.mime_type, packet.payload)
        return self._kf_checked

    def on_sender_report(self, ssrc: int, ntp_timestamp: int, rtp_timestamp: int) -> None:
        layer = self._by_ssrc.get(ssrc)
        if layer is not None:
            self._set_mapping(layer, ntp_timestamp, rtp_timestamp)

    def _set_mapping(self, layer: Layer, ntp_timestamp: int, rtp_timestamp: int) -> None:
        layer.sr_mapping = (ntp_timestamp, rtp_timestamp)
        for consumer in self.consumers.values():
            consumer.sender_report(layer, ntp_timestamp, rtp_timestamp)

    def downstream_loss(self) -> int:
        """The worst loss (0-255) a listener of this track reported lately."""
        now = time.monotonic()
        losses = [c.feedback.fresh_loss(now) for c in self.consumers.values() if not c.records]
        return round(max(losses, default=0.0) * 256)

    # -- gating (push-to-talk) -----------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Forward nothing until resumed (nothing is cached either)."""
        if not self._paused:
            self.pauses += 1
        self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            for consumer in self.consumers.values():
                consumer.resync()

    # -- consumers ------------------------------------------------------

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers[consumer.id] = consumer
        self.request_keyframe(consumer.chooser.target)

    def remove_consumer(self, consumer: Consumer) -> None:
        self.consumers.pop(consumer.id, None)

    # -- feedback upstream ----------------------------------------------

    def request_keyframe(self, layer: int | None = None) -> None:
        """Ask the publisher for a keyframe on ``layer`` (None: on every
        layer), at most once per interval; a request inside the interval is
        deferred to its end, not lost."""
        if self.closed or self.kind != "video":
            return
        self._kf_layers.update(range(len(self.layers)) if layer is None else (layer,))
        if self._kf_timer is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._kf_last + self._kf_interval - loop.time()
        if wait <= 0:
            self._send_keyframe_request()
        else:
            self._kf_timer = loop.call_later(wait, self._send_keyframe_request)

    def _keyframe_arrived(self, layer: int) -> None:
        """A keyframe of ``layer`` answers a request deferred meanwhile."""
        self._kf_layers.discard(layer)
        if not self._kf_layers and self._kf_timer is not None:
            self._kf_timer.cancel()
            self._kf_timer = None

    def _send_keyframe_request(self) -> None:
        self._kf_timer = None
        ssrcs = [
            layer.ssrc
            for layer in self.layers
            if layer.index in self._kf_layers and layer.ssrc is not None
        ]
        self._kf_layers.clear()
        if self.closed or not ssrcs:
            # nothing received yet: the first packets will start with a keyframe
            return
        self._kf_last = asyncio.get_running_loop().time()
        self.keyframes_requested += 1
        for ssrc in ssrcs:
            self._tasks.spawn(self._send_pli(ssrc), name="pli")

    def request_retransmission(self, layer: Layer, sequence_numbers: list[int]) -> None:
        """Ask the publisher again for ``sequence_numbers`` of ``layer``
        (in ascending order: aiortc packs a NACK from a sorted list, and one
        out of order, as a receiver's list around a wrap maps back, fails)."""
        if not self.closed and layer.ssrc is not None:
            self.nacks_sent += 1
            self.nacks_upstream += len(sequence_numbers)
            ordered = sorted(set(sequence_numbers))
            self._tasks.spawn(self._send_nack(layer.ssrc, ordered), name="nack")

    async def _feedback_loop(self) -> None:
        while True:
            await asyncio.sleep(FEEDBACK_INTERVAL_S)
            self.update_feedback(time.monotonic())

    def update_feedback(self, now: float) -> None:
        """Let every consumer choose its layer again, and tell the publisher
        (REMB) the bitrate that serves them (server/media/bandwidth.py)."""
        if self.closed:
            return
        for layer in self.layers:
            if layer.active(now):
                layer.known_bps = layer.meter.bps(now)
        if self.simulcast:
            for consumer in self.consumers.values():
                before = consumer.chooser.target
                if consumer.choose_layer(now) != before:
                    self.request_keyframe(consumer.chooser.target)
        bitrate = upstream_bitrate(self, now)
        ssrcs = [layer.ssrc for layer in self.layers if layer.ssrc is not None]
        if bitrate is not None and ssrcs and self._send_remb is not None:
            if not self._remb_due(bitrate, now):
                return
            self.remb_bps, self._remb_at = bitrate, now
            self.rembs_sent += 1
            self._tasks.spawn(self._send_remb(bitrate, ssrcs), name="remb")

    def _remb_due(self, bitrate: int, now: float) -> bool:
        """A REMB only when the bitrate moved by more than REMB_CHANGE, or
        as a refresh every REMB_REFRESH_S: an encoder may restart on each
        new value (aiortc's does)."""
        last = self.remb_bps
        if last is None or now - self._remb_at >= REMB_REFRESH_S:
            return True
        return abs(bitrate - last) > REMB_CHANGE * last

    def describe_layers(self) -> list[dict[str, object]]:
        now = time.monotonic()
        return [layer.describe(now) for layer in self.layers]

    # -- lifecycle ------------------------------------------------------

    def on_close(self, callback: Callable[[Producer], None]) -> None:
        self._on_close.append(callback)

    async def close(self) -> None:
        """Close this producer and all its consumers; idempotent."""
        if self.closed:
            return
        self.closed = True
        if self._kf_timer is not None:
            self._kf_timer.cancel()
            self._kf_timer = None
        for consumer in list(self.consumers.values()):
            consumer.close()
        for layer in self.layers:
            layer.cache.clear()
        for callback in self._on_close:
            callback(self)
        await self._tasks.aclose()
        self._log.info("producer closed")
