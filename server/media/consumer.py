"""Consumer: one forwarded copy of a Producer for one participant (or the
Recorder). Rewrites sequence numbers and timestamps into its own space so
that gaps it did not forward (push-to-talk, late join) never look like loss.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from aiortc.rtp import RtpPacket

if TYPE_CHECKING:
    from server.media.producer import Producer

logger = logging.getLogger(__name__)

#: a consumer whose leg is down logs its drop count this often (in packets)
DROP_LOG_EVERY = 1000


class PacketWriter(Protocol):
    """Where a Consumer's packets go: a WebRTC leg, or the Recorder."""

    @property
    def ready(self) -> bool:
        """Whether a packet sent now would be delivered."""
        ...

    def send(self, packet: RtpPacket, sequence_number: int, timestamp: int) -> bool: ...

    def set_sender_report_mapping(self, ntp_timestamp: int, rtp_timestamp: int) -> None: ...


class Consumer:
    def __init__(self, consumer_id: str, producer: Producer, participant_id: str) -> None:
        self.id = consumer_id
        self.producer = producer
        self.participant_id = participant_id
        self._writer: PacketWriter = _NotYetBound()
        self._on_close: list[Callable[[Consumer], None]] = []
        self._seq_offset = random.getrandbits(15)
        self._ts_offset = random.getrandbits(32)
        self._last_seq: int | None = None
        self._resync = True
        self._needs_keyframe = producer.kind == "video"
        self.packets_sent = 0
        self.packets_dropped = 0
        #: packets this consumer's receiver asked for again (NACK), and how
        #: many of them the producer's cache answered at once
        self.packets_nacked = 0
        self.packets_retransmitted = 0
        self.closed = False

    def bind(self, writer: PacketWriter) -> None:
        self._writer = writer

    def on_close(self, callback: Callable[[Consumer], None]) -> None:
        self._on_close.append(callback)

    def forward(self, packet: RtpPacket) -> None:
        if self._needs_keyframe:
            # hold video back until a keyframe starts on a connected leg
            if not self._writer.ready:
                return
            if not self.producer.keyframe_starts_at(packet):
                self.producer.request_keyframe()  # coalesced by the producer
                return
            self._needs_keyframe = False
        if self._resync:
            if self._last_seq is not None:
                self._seq_offset = (self._last_seq + 1 - packet.sequence_number) & 0xFFFF
            self._resync = False
        seq = (packet.sequence_number + self._seq_offset) & 0xFFFF
        if self._writer.send(packet, seq, (packet.timestamp + self._ts_offset) & 0xFFFFFFFF):
            self._last_seq = seq
            self.packets_sent += 1
        else:
            # the leg is not connected (yet, or any more): counted, and logged
            # when it lasts (a leg that is still connecting drops a few)
            self.packets_dropped += 1
            if self.packets_dropped % DROP_LOG_EVERY == 0:
                logger.warning(
                    "consumer %s (%s of %s): %d packets dropped, leg not connected",
                    self.id,
                    self.participant_id,
                    self.producer.id,
                    self.packets_dropped,
                )

    def resync(self) -> None:
        """The producer skipped packets on purpose: continue our sequence
        numbers without a gap."""
        self._resync = True

    def retransmit(self, sequence_numbers: list[int]) -> list[int]:
        """Resend what the producer's cache still has; return the producer
        sequence numbers it does not have."""
        missing: list[int] = []
        self.packets_nacked += len(sequence_numbers)
        for seq in sequence_numbers:
            original = (seq - self._seq_offset) & 0xFFFF
            packet = self.producer.cache.get(original)
            if packet is None:
                missing.append(original)
            elif self._writer.send(packet, seq, (packet.timestamp + self._ts_offset) & 0xFFFFFFFF):
                self.packets_retransmitted += 1
        return missing

    def set_sender_report_mapping(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        self._writer.set_sender_report_mapping(
            ntp_timestamp, (rtp_timestamp + self._ts_offset) & 0xFFFFFFFF
        )

    def on_feedback(self, kind: str, sequence_numbers: list[int]) -> None:
        if self.closed:
            return
        if kind == "keyframe":
            self.producer.request_keyframe()
        elif kind == "nack":
            missing = self.retransmit(sequence_numbers)
            if missing:
                self.producer.request_retransmission(missing)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.producer.remove_consumer(self)
        for callback in self._on_close:
            callback(self)


class _NotYetBound:
    ready = False

    def send(self, packet: RtpPacket, sequence_number: int, timestamp: int) -> bool:
        return False

    def set_sender_report_mapping(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        pass
