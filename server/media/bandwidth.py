"""How much a publisher should send: the bitrate the server puts in the
RTCP REMB it sends upstream, once a second, for each video Producer.

It is the smallest of:

* the session's cap (``Limits.max_video_bitrate_kbps``, also in the offer
  as ``b=AS``/``b=TIAS``);
* what the consumers can use:

  - one stream (no simulcast): the smallest REMB among the viewers. A coach
    on a thin link lowers the picture for everyone, the only way one
    encoded stream can reach them all;
  - simulcast: the layers some consumer takes plus the next one up (so a
    consumer can still try it), at their measured bitrates. Layers nobody
    takes are turned off by the publisher's own allocation, which saves the
    classroom's uplink; with the Recorder consuming, every layer is kept.

The publisher's own uplink is left to its own congestion control (loss
based, under this REMB): aiortc's receive-side estimator, fed from Python,
sees congestion that is not there on a loaded host (see aiortc_adapter).
While no consumer asks for less: the cap, at once, to a simulcast
(browser) publisher, so that its start-up trusts it and sends every layer
within seconds; to any other publisher no REMB at all (the cap is in the
offer already), or the cap again to lift a lower REMB sent before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.media.layers import Layer

if TYPE_CHECKING:
    from server.media.producer import Producer

#: REMB this much above what the kept layers measured: the publisher's
#: allocator needs room to keep the last of them on
LAYER_MARGIN = 1.25


def upstream_bitrate(producer: Producer, now: float) -> int | None:
    """The REMB for ``producer``: what its consumers can use, under the
    session's cap. While they ask for no less than that, the cap (which
    reached the publisher in the offer's ``b=AS``/``b=TIAS``), or no REMB
    at all if none was ever sent."""
    if producer.simulcast:
        demand = simulcast_demand(producer, now)
    else:
        demand = viewers_minimum(producer, now)
    cap = producer.max_bitrate_bps
    if demand is None:
        # the cap again only to lift a lower REMB sent before (a REMB
        # holds until the next one), or as the first REMB of a simulcast
        # (browser) publisher: a browser trusts a REMB in its first 2 s and
        # starts at it, instead of ramping up from 300 kbit/s for ~20 s with
        # its top layer off. Never a first REMB for nothing to a single
        # stream, as an encoder may restart on each new value (aiortc's does)
        if cap and (producer.remb_bps is not None or producer.simulcast):
            return int(cap)
        return None
    return int(min(demand, cap)) if cap else int(demand)


def viewers_minimum(producer: Producer, now: float) -> float | None:
    """The smallest fresh REMB among the viewers (the Recorder has none)."""
    estimates = [
        c.feedback.fresh_estimate(now) for c in producer.consumers.values() if not c.records
    ]
    known = [e for e in estimates if e is not None]
    return min(known) if known else None


def simulcast_demand(producer: Producer, now: float) -> float | None:
    """The bitrate of the layers consumers take, plus one; None: all of them."""
    consumers = list(producer.consumers.values())
    top = len(producer.layers) - 1
    if not consumers or any(c.records for c in consumers):
        return None
    wanted = max(min(top, c.chooser.target + 1) for c in consumers)
    if wanted >= top:
        return None
    total = sum(_layer_bps(layer, now) for layer in producer.layers[: wanted + 1])
    return total * LAYER_MARGIN if total else None


def _layer_bps(layer: Layer, now: float) -> float:
    return layer.meter.bps(now) if layer.active(now) else layer.known_bps
