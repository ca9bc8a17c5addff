"""The one clock: every event and media timeline is ms since session start."""

from __future__ import annotations

import time
from collections.abc import Callable

MonotonicFn = Callable[[], float]


class SessionClock:
    """Milliseconds since a session went live, from a monotonic source.

    ``now_fn`` is injectable so tests can drive time; production uses
    ``time.monotonic``.
    """

    def __init__(self, now_fn: MonotonicFn = time.monotonic) -> None:
        self._now_fn = now_fn
        self._start: float | None = None
        self.wall_start: float | None = None

    def start(self) -> None:
        if self._start is None:
            self._start = self._now_fn()
            self.wall_start = time.time()

    def start_from(self, wall_start: float) -> None:
        """Start as if started at unix time ``wall_start`` (a session that
        moved to this node keeps its clock)."""
        if self._start is None:
            self._start = self._now_fn() - max(0.0, time.time() - wall_start)
            self.wall_start = wall_start

    @property
    def started(self) -> bool:
        return self._start is not None

    def now_ms(self) -> int:
        """ms since start; 0 before the session has started."""
        if self._start is None:
            return 0
        return int((self._now_fn() - self._start) * 1000)
