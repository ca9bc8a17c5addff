"""What ``/metrics`` reads from the live objects at scrape time: sessions,
participants, producers, consumers, packets and bytes forwarded and dropped,
NACKs and retransmissions, keyframe requests, recordings. Nothing is added
to the packet path: each object keeps its own counters; the Router sums
those of producers and consumers that closed, and this collector keeps the
final sums of sessions and recordings that closed, so totals never go down.
(A session or recording that opens and closes between two scrapes is not
counted: scrapes are seconds apart, lessons are not.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from server.live.session import Session
from server.media.router import CONSUMER_COUNTERS, PRODUCER_COUNTERS, Router
from server.recording.recorder import RECORDER_PARTICIPANT, Recorder

logger = logging.getLogger(__name__)

#: how often the event-loop lag is sampled
LAG_PERIOD_S = 0.1

# metric -> (help, the objects' counter it sums)
_MEDIA_COUNTERS = {
    "sidecoach_media_packets_received": ("RTP packets from publishers", "packets_received"),
    "sidecoach_media_bytes_received": ("RTP payload bytes from publishers", "bytes_received"),
    "sidecoach_media_packets_forwarded": ("RTP packets forwarded to subscribers", "packets_sent"),
    "sidecoach_media_bytes_forwarded": ("RTP payload bytes forwarded", "bytes_sent"),
    "sidecoach_media_packets_dropped": (
        "packets not forwarded because the subscriber's leg was not connected",
        "packets_dropped",
    ),
    "sidecoach_media_packets_gated": (
        "whisper packets dropped while push-to-talk was released",
        "packets_gated",
    ),
    "sidecoach_media_nacks_received": ("NACKs from subscribers", "nacks_received"),
    "sidecoach_media_retransmissions": (
        "packets resent from the packet cache after a NACK",
        "packets_retransmitted",
    ),
    "sidecoach_media_nacks_sent": ("NACKs sent upstream to publishers", "nacks_sent"),
    "sidecoach_media_keyframe_requests_received": (
        "keyframe requests (PLI/FIR) from subscribers",
        "keyframe_requests_received",
    ),
    "sidecoach_media_keyframe_requests_sent": (
        "keyframe requests sent upstream to publishers (coalesced)",
        "keyframes_requested",
    ),
}


def router_totals(router: Router) -> dict[str, int]:
    """Counters of a router's closed and live producers and consumers, by
    ``kind:counter`` (kind: audio, video, or recorder for its consumers)."""
    totals = dict(router.retired)
    for producer in list(router.producers.values()):
        for name in PRODUCER_COUNTERS:
            key = f"{producer.kind}:{name}"
            totals[key] = totals.get(key, 0) + getattr(producer, name)
        for consumer in list(producer.consumers.values()):
            kind = "recorder" if consumer.participant_id == RECORDER_PARTICIPANT else producer.kind
            for name in CONSUMER_COUNTERS:
                key = f"{kind}:{name}"
                totals[key] = totals.get(key, 0) + getattr(consumer, name)
    return totals


def recorder_bytes(recorder: Recorder) -> int:
    return sum(t.writer.stats.bytes_written for t in recorder.tracks.values())


class NodeCollector(Collector):
    def __init__(
        self,
        sessions: Callable[[], Iterable[Session]],
        extra: Callable[[], Iterator[Metric]] | None = None,
    ) -> None:
        self._sessions = sessions
        self._extra = extra
        #: sessions and recorders seen, until their final counts are taken
        self._tracked: dict[int, Session] = {}
        self._recorders: dict[int, Recorder] = {}
        self._retired: dict[str, int] = {}
        self._recording_bytes = 0
        self._recording_errors = 0

    def _media_totals(self, live: list[Session]) -> dict[str, int]:
        for session in live:
            self._tracked.setdefault(id(session), session)
        totals = dict(self._retired)
        for key, session in list(self._tracked.items()):
            counts = router_totals(session.router)
            if session.closed and session.router.closed:
                for name, value in counts.items():
                    self._retired[name] = self._retired.get(name, 0) + value
                del self._tracked[key]
            for name, value in counts.items():
                totals[name] = totals.get(name, 0) + value
        return totals

    def _recording_totals(self, live: list[Session]) -> tuple[int, int, int]:
        for session in live:
            recorder = session.recording.recorder
            if recorder is not None:
                self._recorders.setdefault(id(recorder), recorder)
        written, errors, active = self._recording_bytes, self._recording_errors, 0
        for key, recorder in list(self._recorders.items()):
            size, failed = recorder_bytes(recorder), int(recorder.error is not None)
            written += size
            errors += failed
            if recorder.closed:
                self._recording_bytes += size
                self._recording_errors += failed
                del self._recorders[key]
            else:
                active += 1
        return written, errors, active

    def collect(self) -> Iterator[Metric]:
        live = [s for s in self._sessions() if not s.closed]
        yield GaugeMetricFamily("sidecoach_sessions", "sessions live on this node", len(live))
        roles = GaugeMetricFamily(
            "sidecoach_participants", "participants on this node, by role", labels=["role"]
        )
        by_role: dict[str, int] = {}
        producers: dict[str, int] = {}
        consumers: dict[str, int] = {}
        for session in live:
            for participant in session.participants.values():
                by_role[str(participant.role)] = by_role.get(str(participant.role), 0) + 1
            for producer in list(session.router.producers.values()):
                producers[producer.kind] = producers.get(producer.kind, 0) + 1
                for consumer in producer.consumers.values():
                    recorded = consumer.participant_id == RECORDER_PARTICIPANT
                    to = "recorder" if recorded else producer.kind
                    consumers[to] = consumers.get(to, 0) + 1
        for role, count in sorted(by_role.items()):
            roles.add_metric([role], count)
        yield roles
        gauge = GaugeMetricFamily(
            "sidecoach_producers", "tracks published, by kind", labels=["kind"]
        )
        for kind, count in sorted(producers.items()):
            gauge.add_metric([kind], count)
        yield gauge
        gauge = GaugeMetricFamily(
            "sidecoach_consumers",
            "forwarded copies of tracks, by kind (recorder: to the Recorder)",
            labels=["kind"],
        )
        for kind, count in sorted(consumers.items()):
            gauge.add_metric([kind], count)
        yield gauge

        totals = self._media_totals(live)
        for metric, (text, counter) in _MEDIA_COUNTERS.items():
            family = CounterMetricFamily(metric, text, labels=["kind"])
            for kind in ("audio", "video", "recorder"):
                value = totals.get(f"{kind}:{counter}")
                if value is not None:
                    family.add_metric([kind], value)
            yield family

        written, errors, active = self._recording_totals(live)
        yield GaugeMetricFamily("sidecoach_recordings_active", "recordings being written", active)
        yield CounterMetricFamily(
            "sidecoach_recording_bytes", "media bytes written to recordings", value=written
        )
        yield CounterMetricFamily(
            "sidecoach_recording_errors", "recordings stopped by an error", value=errors
        )
        if self._extra is not None:
            yield from self._extra()


async def watch_loop_lag(observe: Callable[[float], Any]) -> None:
    """Sample how late the event loop wakes a sleeper (every LAG_PERIOD_S):
    the time any packet or message may wait for this process's loop."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(LAG_PERIOD_S)
        observe(max(0.0, loop.time() - start - LAG_PERIOD_S))
