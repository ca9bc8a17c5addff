"""Counters the server keeps about itself, exposed at ``GET /metrics`` in the
Prometheus text format.

One ``Metrics`` object per app, with its own ``CollectorRegistry`` (never
prometheus-client's global default registry), made by ``create_app`` and
passed to whatever counts. Add a metric as one more attribute here, named
``sidecoach_<area>_<what>`` with bounded label values (error codes, fixed
reasons: never ids, addresses or free text).
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # -- signaling edge --------------------------------------------------
        self.signaling_messages = Counter(
            "sidecoach_signaling_messages",
            "socket.io messages answered, by outcome (ok or error code)",
            ["outcome"],
            registry=r,
        )
        self.signaling_malformed = Counter(
            "sidecoach_signaling_malformed_packets",
            "frames or packets that could not be handled (the socket was closed)",
            ["reason"],
            registry=r,
        )
        self.sockets_refused = Counter(
            "sidecoach_signaling_sockets_refused",
            "connections refused or closed by a limit",
            ["limit"],
            registry=r,
        )
        self.participants_removed = Counter(
            "sidecoach_participants_removed",
            "participants the server removed from a session, by reason code",
            ["code"],
            registry=r,
        )
        self.log_lines_suppressed = Counter(
            "sidecoach_log_lines_suppressed",
            "warning lines not written because of the log rate limit",
            registry=r,
        )
        self.signaling_events = Counter(
            "sidecoach_signaling_events",
            "messages handled, by event (cue: cues sent; whisper-start: whispers; ...)",
            ["event"],
            registry=r,
        )
        # -- this process -------------------------------------------------------
        self.loop_lag = Histogram(
            "sidecoach_event_loop_lag_seconds",
            "how late the event loop woke a 100 ms sleeper: what any packet or message"
            " may wait for this process",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        # -- HTTP API ----------------------------------------------------------
        self.http_refusals = Counter(
            "sidecoach_http_refusals",
            "HTTP API requests refused, by error code",
            ["code"],
            registry=r,
        )

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))

    async def handle(self, request: web.Request) -> web.Response:
        """``GET /metrics``."""
        response = web.Response(body=self.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response


def setup_metrics(app: web.Application, metrics: Metrics) -> None:
    app.router.add_get("/metrics", metrics.handle)
