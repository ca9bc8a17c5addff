"""Simulcast: the RTP streams of one Producer, and which one a Consumer gets.

A browser camera published with simulcast sends one RTP stream per
resolution (``rid`` l, m, h); any other Producer has one stream. Each is a
``Layer`` with its own SSRC, packet cache (NACKs name an SSRC) and measured
bitrate. Every Consumer has a ``LayerChooser`` that picks the layer its
receiver's link can take, from that receiver's feedback:

* **down** at once when the receiver reports heavy loss (RTCP receiver
  reports) or its estimate (REMB) is below what the current layer sends;
* **up** one layer at a time, after a hold with a clean link: a receiver's
  REMB never exceeds 1.5 times what it receives, so it cannot say that a
  bigger layer would fit; trying it is the probe. For ``PROBE_S`` after the
  try, only loss or a falling estimate ends it (the estimate needs a few
  seconds to grow with what it receives). A try that fails (down again
  soon) doubles the hold, up to ``UP_HOLD_MAX_S``.

The Recorder's consumer always takes the highest layer that flows. The
switch itself (at a keyframe of the new layer, with sequence numbers,
timestamps and VP8 picture ids continued) is the Consumer's.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from server.media.packet_cache import PacketCache

#: a layer that sent nothing for this long is not flowing (the publisher
#: turned it off, e.g. for lack of uplink)
LAYER_IDLE_S = 1.5
#: bitrate measured over this window
RATE_WINDOW_S = 2.0


class BitrateMeter:
    """Bits per second over the last ``RATE_WINDOW_S``, in 100 ms buckets.
    Per packet, ``add`` only sums into the open bucket."""

    BUCKET_S = 0.1
    _SPAN = int(RATE_WINDOW_S / BUCKET_S)

    def __init__(self) -> None:
        self._buckets: deque[tuple[int, int]] = deque()  # closed: (bucket number, bytes)
        self._open = -1  # the open bucket's number (-1: none yet)
        self._open_bytes = 0

    def add(self, size: int, now: float) -> None:
        n = int(now / self.BUCKET_S)
        if n == self._open:
            self._open_bytes += size
            return
        if self._open >= 0:
            self._buckets.append((self._open, self._open_bytes))
            oldest = n - self._SPAN
            while self._buckets and self._buckets[0][0] <= oldest:
                self._buckets.popleft()
        self._open, self._open_bytes = n, size

    def bps(self, now: float) -> float:
        oldest = int(now / self.BUCKET_S) - self._SPAN
        total = sum(size for n, size in self._buckets if n > oldest)
        if self._open > oldest:
            total += self._open_bytes
        return total * 8 / RATE_WINDOW_S


class Layer:
    """One RTP stream of a Producer: its only one, or one simulcast layer."""

    def __init__(self, index: int, rid: str | None, cache_size: int) -> None:
        self.index = index
        self.rid = rid
        self.ssrc: int | None = None
        self.cache = PacketCache(cache_size)
        self.packets = 0
        self.last_packet_at = -1e9
        self.meter = BitrateMeter()
        #: what this layer sent while it last flowed (bit/s)
        self.known_bps = 0.0
        #: (NTP, RTP) of the publisher's last sender report for this stream
        self.sr_mapping: tuple[int, int] | None = None
        #: picture size, read from this layer's last VP8 keyframe
        self.width = 0
        self.height = 0

    def active(self, now: float) -> bool:
        return self.packets > 0 and now - self.last_packet_at < LAYER_IDLE_S

    def describe(self, now: float) -> dict[str, object]:
        return {
            "rid": self.rid, "ssrc": self.ssrc, "active": self.active(now),
            "bitrate": round(self.meter.bps(now)), "width": self.width, "height": self.height,
        }  # fmt: skip


@dataclass
class Feedback:
    """What a consumer's receiver said lately about its link."""

    #: REMB (this consumer's share of it), bit/s, and when
    estimate_bps: int | None = None
    estimate_at: float = -1e9
    #: fraction lost (0..1) in the receiver's last report, and when
    loss: float = 0.0
    loss_at: float = -1e9

    #: feedback older than this is ignored
    FRESH_S = 5.0

    def fresh_estimate(self, now: float) -> int | None:
        return self.estimate_bps if now - self.estimate_at < self.FRESH_S else None

    def fresh_loss(self, now: float) -> float:
        return self.loss if now - self.loss_at < self.FRESH_S else 0.0


class LayerChooser:
    """The layer one consumer should get (see the module docstring)."""

    #: a layer fits an estimate when it sends at most this share of it (the
    #: rest for audio and headers); a layer sending more than the estimate
    #: divided by this does not fit any more
    FIT = 0.9
    #: a receiver report above this loss fraction means the link is overloaded
    LOSSY = 0.10
    #: below this, the link is clean enough to try the next layer up
    CLEAN = 0.02
    UP_HOLD_MIN_S = 4.0
    UP_HOLD_MAX_S = 64.0
    PROBE_S = 6.0
    #: during a probe, an estimate this far below the one at its start
    #: means the new layer does not fit
    PROBE_DROP = 0.85

    def __init__(self, top: int, *, always_top: bool = False) -> None:
        self.target = top  # optimistic: the best layer, until feedback says otherwise
        self.always_top = always_top
        self._hold_s = self.UP_HOLD_MIN_S
        self._next_up_at = 0.0
        self._tried_up_at: float | None = None
        self._estimate_at_try: int | None = None
        self.switches_down = 0
        self.switches_up = 0

    def choose(self, layers: list[Layer], feedback: Feedback, now: float) -> int:
        active = [layer.index for layer in layers if layer.active(now)]
        if not active:
            return self.target  # nothing flows: keep the wish
        if self.always_top:
            self.target = active[-1]
            return self.target
        current = max((i for i in active if i <= self.target), default=active[0])
        estimate = feedback.fresh_estimate(now)
        loss = feedback.fresh_loss(now)
        rate = {layer.index: layer.meter.bps(now) for layer in layers}
        if loss >= self.LOSSY or self._too_little(estimate, rate[current], now):
            fits = [i for i in active if estimate is None or rate[i] <= estimate * self.FIT]
            lower = max(fits) if fits else active[0]
            if loss >= self.LOSSY:
                lower = min(lower, max((i for i in active if i < current), default=current))
            if lower < current:
                if self._tried_up_at is not None and now - self._tried_up_at < self._hold_s:
                    self._hold_s = min(self.UP_HOLD_MAX_S, self._hold_s * 2)  # the try failed
                self._tried_up_at = None
                self._next_up_at = now + self._hold_s
                self.switches_down += 1
                current = lower
        elif now >= self._next_up_at and loss < self.CLEAN:
            higher = [i for i in active if i > current]
            if higher:
                if self._tried_up_at is not None:
                    self._hold_s = self.UP_HOLD_MIN_S  # the last try held: stay eager
                current = higher[0]
                self._tried_up_at = now
                self._estimate_at_try = estimate
                self._next_up_at = now + self._hold_s
                self.switches_up += 1
        self.target = current
        return current

    def _too_little(self, estimate: int | None, rate: float, now: float) -> bool:
        """Whether ``estimate`` says the current layer (sending ``rate``)
        does not fit."""
        if estimate is None:
            return False
        if self._tried_up_at is not None and now - self._tried_up_at < self.PROBE_S:
            before = self._estimate_at_try
            return before is not None and estimate < before * self.PROBE_DROP
        return estimate * self.FIT < rate
