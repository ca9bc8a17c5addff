"""Consumer: one forwarded copy of a Producer for one participant (or the
Recorder). Rewrites sequence numbers and timestamps into its own space so
that gaps it did not forward (push-to-talk, late join) never look like loss.

Of a simulcast Producer it forwards one layer (``LayerChooser``), and
switches only where a keyframe of the new layer starts; its receiver sees
one stream throughout: sequence numbers, timestamps and VP8 picture ids
continue where the old layer stopped. Each run of packets forwarded with
one mapping is a ``_Segment``; NACKs are answered through the segment
their sequence number falls in.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from aiortc.rtp import RtpPacket

from server.media.keyframes import Vp8Ids
from server.media.layers import LAYER_IDLE_S, Feedback, Layer, LayerChooser
from server.media.policy import RECORDER_ROLE

if TYPE_CHECKING:
    from server.media.producer import Producer

logger = logging.getLogger(__name__)

#: a consumer whose leg is down logs its drop count this often (in packets)
DROP_LOG_EVERY = 1000
#: past segments kept to answer NACKs across a layer switch
SEGMENTS_KEPT = 4


class PacketWriter(Protocol):
    """Where a Consumer's packets go: a WebRTC leg, or the Recorder."""

    @property
    def ready(self) -> bool:
        """Whether a packet sent now would be delivered."""
        ...

    def send(self, packet: RtpPacket, sequence_number: int, timestamp: int) -> bool: ...

    def set_sender_report_mapping(self, ntp_timestamp: int, rtp_timestamp: int) -> None: ...


class _Segment:
    """Packets of one layer forwarded with one mapping, from ``first_in``."""

    __slots__ = ("layer", "first_in", "first_out", "seq_offset", "ts_offset", "pid", "tl0")

    def __init__(
        self, layer: Layer, first_in: int, seq_offset: int, ts_offset: int, pid: int, tl0: int
    ) -> None:
        self.layer = layer
        self.first_in = first_in
        self.first_out = (first_in + seq_offset) & 0xFFFF
        self.seq_offset = seq_offset
        self.ts_offset = ts_offset
        #: added to the VP8 picture id / TL0PICIDX (simulcast only)
        self.pid = pid
        self.tl0 = tl0


class Consumer:
    def __init__(
        self, consumer_id: str, producer: Producer, participant_id: str, role: str = ""
    ) -> None:
        self.id = consumer_id
        self.producer = producer
        self.participant_id = participant_id
        #: the Recorder's consumer: always the best layer, and no REMB of its own
        self.records = role == RECORDER_ROLE
        self._writer: PacketWriter = _NotYetBound()
        self._on_close: list[Callable[[Consumer], None]] = []
        self._video = producer.kind == "video"
        self._rewrite_vp8 = producer.simulcast and producer.codec.mime_type.lower() == "video/vp8"
        self.chooser = LayerChooser(len(producer.layers) - 1, always_top=self.records)
        self.feedback = Feedback()
        self._segments: deque[_Segment] = deque(maxlen=SEGMENTS_KEPT)
        #: the layer being forwarded (None: none yet, or waiting for a keyframe)
        self.current_layer: int | None = None
        self._resync = False
        #: the layer forwarded before the publisher's stall (see after_stall)
        self._resume_layer: int | None = None
        self._last_seq: int | None = None
        self._last_ts = 0
        self._last_at = 0.0
        self._last_pid = 0
        self._last_tl0 = 0
        self.packets_sent = 0
        self.packets_dropped = 0
        #: read by /metrics at scrape time (server/node_metrics.py)
        self.bytes_sent = 0
        self.nacks_received = 0
        self.keyframe_requests_received = 0
        #: packets this consumer's receiver asked for again (NACK), and how
        #: many of them the producer's cache answered at once
        self.packets_nacked = 0
        self.packets_retransmitted = 0
        self.layer_switches = 0
        self.closed = False

    def bind(self, writer: PacketWriter) -> None:
        self._writer = writer

    def on_close(self, callback: Callable[[Consumer], None]) -> None:
        self._on_close.append(callback)

    # -- forwarding -----------------------------------------------------

    def forward(self, packet: RtpPacket, layer: Layer) -> None:
        if layer.index != self.current_layer:
            if not self._enter(packet, layer):
                return
        elif self._resync:
            self._resync = False
            self._start_segment(packet, layer, same_layer=True)
        seg = self._segments[-1]
        if (packet.sequence_number - seg.first_in) & 0xFFFF >= 0x8000:
            return  # older than the segment (from before the switch)
        seq = (packet.sequence_number + seg.seq_offset) & 0xFFFF
        ts = (packet.timestamp + seg.ts_offset) & 0xFFFFFFFF
        out = self._rewritten(packet, seg) if self._rewrite_vp8 else packet
        if self._writer.send(out, seq, ts):
            if self._last_seq is None or (seq - self._last_seq) & 0xFFFF < 0x8000:
                self._last_seq, self._last_ts = seq, ts
                self._last_at = self.producer.packet_time
            self.packets_sent += 1
            self.bytes_sent += len(packet.payload)
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

    def _enter(self, packet: RtpPacket, layer: Layer) -> bool:
        """Start forwarding ``layer`` at ``packet``, if it should and can."""
        if self._video:
            if not self._may_take(layer):
                return False  # another layer than the one this consumer wants
            # hold video back until a keyframe starts on a connected leg
            if not self._writer.ready:
                return False
            if not self.producer.keyframe_starts_at(packet):
                self.producer.request_keyframe(layer.index)  # coalesced by the producer
                return False
        if self.current_layer is not None:
            self.layer_switches += 1
        same_layer = layer.index == self._resume_layer
        self._resume_layer = None
        self._start_segment(packet, layer, same_layer=same_layer)
        self.current_layer = layer.index
        self._resync = False
        if layer.sr_mapping is not None:
            self.sender_report(layer, *layer.sr_mapping)
        return True

    def _may_take(self, layer: Layer) -> bool:
        """The wanted layer; or, while it does not flow, the best one below."""
        target = self.chooser.target
        if layer.index >= target:
            return layer.index == target
        producer = self.producer
        now = producer.packet_time
        if now - producer.first_packet_at < LAYER_IDLE_S:
            return False  # every layer starts at once: give the wanted one time
        return not any(other.active(now) for other in producer.layers[layer.index + 1 : target + 1])

    def _start_segment(self, packet: RtpPacket, layer: Layer, *, same_layer: bool) -> None:
        previous = self._segments[-1] if self._segments else None
        if previous is None or self._last_seq is None:
            seq_offset = random.getrandbits(15)
            ts_offset = random.getrandbits(32)
        else:
            seq_offset = (self._last_seq + 1 - packet.sequence_number) & 0xFFFF
            if same_layer:  # a pause (push-to-talk): the publisher's clock goes on
                ts_offset = previous.ts_offset
            else:  # another layer, another clock: continue ours by arrival time
                clock_rate = self.producer.codec.clock_rate
                elapsed = round((self.producer.packet_time - self._last_at) * clock_rate)
                expected = (self._last_ts + max(1, elapsed)) & 0xFFFFFFFF
                ts_offset = (expected - packet.timestamp) & 0xFFFFFFFF
        pid = tl0 = 0
        if self._rewrite_vp8:
            ids = Vp8Ids(packet.payload)
            if previous is not None and same_layer:
                pid, tl0 = previous.pid, previous.tl0
            elif previous is not None:
                if ids.picture_id is not None:
                    pid = self._last_pid + 1 - ids.picture_id
                if ids.tl0 is not None:
                    tl0 = self._last_tl0 + 1 - ids.tl0
        self._segments.append(
            _Segment(layer, packet.sequence_number, seq_offset, ts_offset, pid, tl0)
        )

    def _rewritten(self, packet: RtpPacket, seg: _Segment) -> RtpPacket:
        """``packet`` with the segment's VP8 picture ids (a copy if changed)."""
        ids = Vp8Ids(packet.payload)
        if ids.picture_id is not None:
            self._last_pid = ids.picture_id + seg.pid
        if ids.tl0 is not None:
            self._last_tl0 = ids.tl0 + seg.tl0
        if not seg.pid and not seg.tl0:
            return packet
        copy = RtpPacket(
            payload_type=packet.payload_type,
            marker=packet.marker,
            sequence_number=packet.sequence_number,
            timestamp=packet.timestamp,
            ssrc=packet.ssrc,
            payload=ids.rewrite(packet.payload, seg.pid, seg.tl0),
        )
        return copy

    def restart(self, layer: Layer) -> None:
        """``layer`` starts a new RTP stream (new sequence numbers and
        timestamps): enter it again, as after a layer switch."""
        if layer.index == self.current_layer:
            self.current_layer = None

    def after_stall(self) -> None:
        """Video resumes after the publisher sent nothing for a while (its
        link was cut): what was lost meanwhile cannot all come back (the
        publisher keeps little history), and a receiver waits for it
        (aiortc's jitter buffer for up to 512 packets: seconds of frozen
        picture). Forward nothing until the keyframe the producer asks for,
        and from it on continue our sequence numbers without a gap; the
        timestamps keep the real time that passed."""
        if self._video and self.current_layer is not None:
            self._resume_layer = self.current_layer
            self.current_layer = None

    def resync(self) -> None:
        """The producer skipped packets on purpose: continue our sequence
        numbers without a gap."""
        self._resync = self.current_layer is not None

    # -- feedback from the receiver ---------------------------------------

    def retransmit(self, sequence_numbers: list[int]) -> list[tuple[Layer, int]]:
        """Resend what the producer's cache still has; return the (layer,
        producer sequence number) it does not have."""
        missing: list[tuple[Layer, int]] = []
        self.packets_nacked += len(sequence_numbers)
        for seq in sequence_numbers:
            seg = self._segment_of(seq)
            if seg is None:
                continue
            original = (seq - seg.seq_offset) & 0xFFFF
            packet = seg.layer.cache.get(original)
            if packet is None:
                missing.append((seg.layer, original))
                continue
            out = self._rewritten(packet, seg) if self._rewrite_vp8 else packet
            if self._writer.send(out, seq, (packet.timestamp + seg.ts_offset) & 0xFFFFFFFF):
                self.packets_retransmitted += 1
        return missing

    def _segment_of(self, seq: int) -> _Segment | None:
        for seg in reversed(self._segments):
            if (seq - seg.first_out) & 0xFFFF < 0x8000:
                return seg
        return None

    def sender_report(self, layer: Layer, ntp_timestamp: int, rtp_timestamp: int) -> None:
        """The publisher's (NTP, RTP) mapping of ``layer``, in our timestamps."""
        if layer.index == self.current_layer and self._segments:
            offset = self._segments[-1].ts_offset
            self._writer.set_sender_report_mapping(
                ntp_timestamp, (rtp_timestamp + offset) & 0xFFFFFFFF
            )

    def on_feedback(self, kind: str, values: list[int]) -> None:
        """RTCP from this consumer's receiver: ``keyframe`` (PLI/FIR),
        ``nack`` [sequence numbers], ``remb`` [bit/s, streams it covers],
        ``loss`` [fraction lost, 0-255]."""
        if self.closed:
            return
        if kind == "keyframe":
            self.keyframe_requests_received += 1
            self.producer.request_keyframe(self.current_layer)
        elif kind == "nack":
            self.nacks_received += 1
            by_layer: dict[int, list[int]] = {}
            layers: dict[int, Layer] = {}
            for layer, seq in self.retransmit(values):
                by_layer.setdefault(layer.index, []).append(seq)
                layers[layer.index] = layer
            for index, seqs in by_layer.items():
                self.producer.request_retransmission(layers[index], seqs)
        elif kind == "remb" and values:
            streams = max(1, values[1] if len(values) > 1 else 1)
            self.feedback.estimate_bps = values[0] // streams
            self.feedback.estimate_at = time.monotonic()
        elif kind == "loss" and values:
            self.feedback.loss = values[0] / 256
            self.feedback.loss_at = time.monotonic()

    def choose_layer(self, now: float) -> int:
        """Choose the layer to forward from now on (simulcast)."""
        return self.chooser.choose(self.producer.layers, self.feedback, now)

    def describe(self) -> dict[str, object]:
        layer = self.producer.layers[self.current_layer] if self.current_layer is not None else None
        return {
            "id": self.id,
            "participant": self.participant_id,
            "layer": layer.rid if layer is not None else None,
            "targetLayer": self.producer.layers[self.chooser.target].rid,
            "width": layer.width if layer is not None else 0,
            "height": layer.height if layer is not None else 0,
            "estimate": self.feedback.estimate_bps,
            "loss": round(self.feedback.loss, 3),
            "switches": self.layer_switches,
            "packetsSent": self.packets_sent,
        }

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
