"""The session's event log on disk: append-only JSON lines on the session
clock, flushed and fsync'd at least every ``FSYNC_INTERVAL_S``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

FSYNC_INTERVAL_S = 0.5


class EventLogWriter:
    def __init__(
        self, path: Path, executor: Executor, on_error: Callable[[BaseException], None]
    ) -> None:
        self.path = path
        self._executor = executor
        self._on_error = on_error
        self._fd: int | None = None
        self._last_sync = 0.0
        self.failed = False
        self.count = 0

    def append(self, event: dict[str, Any]) -> None:
        if self.failed:
            return
        line = (json.dumps(event, separators=(",", ":"), default=str) + "\n").encode()
        self.count += 1
        self._executor.submit(self._write, line)

    def _write(self, line: bytes) -> None:
        if self.failed:
            return
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            os.write(self._fd, line)
            now = time.monotonic()
            if now - self._last_sync >= FSYNC_INTERVAL_S:
                os.fsync(self._fd)
                self._last_sync = now
        except Exception as exc:  # a full disk, or anything else: stop visibly
            self.failed = True
            logger.error("event log %s stopped: %s", self.path, exc)
            self._on_error(exc)

    def sync_in_executor(self) -> Any:
        return self._executor.submit(self._sync)

    def _sync(self) -> None:
        if self._fd is not None and not self.failed:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)

    def close_in_executor(self) -> Any:
        def close() -> None:
            self._sync()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

        return self._executor.submit(close)


def read_events(path: Path) -> list[dict[str, Any]]:
    """Read a log back, skipping a torn last line left by a crash."""
    events: list[dict[str, Any]] = []
    if not path.exists():
        return events
    for line in path.read_bytes().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events
