"""Producer: one incoming track. Every RTP packet is handed to each of its
Consumers as it arrives: no queue, no jitter buffer, no decode."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from server.media.aiortc_adapter import current_ntp_time
from server.media.consumer import Consumer
from server.media.keyframes import starts_keyframe
from server.media.packet_cache import PacketCache
from server.media.policy import ProducerInfo
from server.tasks import TaskOwner

logger = logging.getLogger(__name__)

#: video that resumes after this long without a packet (a network cut, a
#: frozen publisher) gets a keyframe request at once: what follows a gap
#: cannot be decoded, and consumers would each notice that later
STALL_KEYFRAME_S = 0.5

#: send a PLI (ssrc) / a NACK (ssrc, sequence numbers) upstream to the publisher
KeyframeRequester = Callable[[int], Coroutine[Any, Any, None]]
NackRequester = Callable[[int, list[int]], Coroutine[Any, Any, None]]


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
    ) -> None:
        self.info = info
        self.codec = codec
        self.cache = PacketCache(cache_size)
        self.consumers: dict[str, Consumer] = {}
        self.ssrc: int | None = None
        self.packets_received = 0
        self._last_packet_at = 0.0
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
        self.keyframes_requested = 0
        #: sequence numbers asked of the publisher again (its cache missed them)
        self.nacks_upstream = 0
        self._sr_mapping: tuple[int, int] | None = None
        self._kf_checked_packet: RtpPacket | None = None
        self._kf_checked = False
        self._tasks = TaskOwner(f"producer {info.producer_id}")
        self._on_close: list[Callable[[Producer], None]] = []
        self._log = logging.LoggerAdapter(
            logger, {"producer": info.producer_id, "participant": info.participant_id}
        )

    @property
    def id(self) -> str:
        return self.info.producer_id

    @property
    def kind(self) -> str:
        return self.info.kind

    # -- packets --------------------------------------------------------

    def on_packet(self, packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        """Called by the receive tap for every packet, synchronously."""
        if self._paused:
            self.packets_gated += 1
            return
        if self.closed:
            return
        self.ssrc = packet.ssrc
        self.packets_received += 1
        now = time.monotonic()
        if now - self._last_packet_at > STALL_KEYFRAME_S and self.packets_received > 1:
            self.request_keyframe()  # media resumes after a stall
        self._last_packet_at = now
        self.cache.put(packet)
        if self._sr_mapping is None:
            # until the publisher's first sender report, map by arrival time
            self._set_mapping(current_ntp_time(), packet.timestamp)
        for consumer in self.consumers.values():
            consumer.forward(packet)

    def keyframe_starts_at(self, packet: RtpPacket) -> bool:
        """Whether ``packet`` starts a keyframe (computed once per packet,
        however many consumers ask)."""
        if packet is not self._kf_checked_packet:
            self._kf_checked_packet = packet
            self._kf_checked = starts_keyframe(self.codec.mime_type, packet.payload)
        return self._kf_checked

    def on_sender_report(self, ssrc: int, ntp_timestamp: int, rtp_timestamp: int) -> None:
        self._set_mapping(ntp_timestamp, rtp_timestamp)

    def _set_mapping(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        self._sr_mapping = (ntp_timestamp, rtp_timestamp)
        for consumer in self.consumers.values():
            consumer.set_sender_report_mapping(ntp_timestamp, rtp_timestamp)

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
        if self._sr_mapping is not None:
            consumer.set_sender_report_mapping(*self._sr_mapping)
        self.request_keyframe()

    def remove_consumer(self, consumer: Consumer) -> None:
        self.consumers.pop(consumer.id, None)

    # -- feedback upstream ----------------------------------------------

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most once per interval;
        a request inside the interval is deferred to its end, not lost."""
        if self.closed or self.kind != "video" or self._kf_timer is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._kf_last + self._kf_interval - loop.time()
        if wait <= 0:
            self._send_keyframe_request()
        else:
            self._kf_timer = loop.call_later(wait, self._send_keyframe_request)

    def _send_keyframe_request(self) -> None:
        self._kf_timer = None
        if self.closed or self.ssrc is None:
            # nothing received yet: the first packets will start with a keyframe
            return
        self._kf_last = asyncio.get_running_loop().time()
        self.keyframes_requested += 1
        self._tasks.spawn(self._send_pli(self.ssrc), name="pli")

    def request_retransmission(self, sequence_numbers: list[int]) -> None:
        if not self.closed and self.ssrc is not None:
            self.nacks_upstream += len(sequence_numbers)
            self._tasks.spawn(self._send_nack(self.ssrc, sequence_numbers), name="nack")

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
        self.cache.clear()
        for callback in self._on_close:
            callback(self)
        await self._tasks.aclose()
        self._log.info("producer closed")
