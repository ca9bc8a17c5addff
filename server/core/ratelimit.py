"""Token bucket per connection: floods get ``rate_limited`` errors."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self, rate: float, burst: int, now_fn: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._now = now_fn
        self._last = now_fn()

    def allow(self) -> bool:
        now = self._now()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class LogLimiter:
    """At most ``per_minute`` lines (burst ``per_minute``) through ``allow``;
    the lines refused are counted and reported with the next line allowed."""

    def __init__(self, per_minute: int, now_fn: Callable[[], float] = time.monotonic) -> None:
        self._bucket = TokenBucket(per_minute / 60.0, max(1, per_minute), now_fn)
        self.suppressed = 0

    def allow(self) -> tuple[bool, int]:
        """(write this line?, lines suppressed since the last one written)."""
        if self._bucket.allow():
            suppressed, self.suppressed = self.suppressed, 0
            return True, suppressed
        self.suppressed += 1
        return False, 0
