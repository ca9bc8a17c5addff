"""The audit log: every read of recorded data (a file, a range of it, a
view of the timeline) and every deletion, appended to ``DATA_DIR/audit.jsonl``
(one JSON object a line, opened append-only, fsync'd), with who, what, when
and how many bytes. Admins query it; a teacher sees who watched their lesson.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

AUDIT_FILE = "audit.jsonl"
#: most entries one query returns (newest first)
MAX_AUDIT_RESULTS = 1000


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="audit")
        self._fd: int | None = None

    @classmethod
    def in_dir(cls, data_dir: Path) -> AuditLog:
        return cls(data_dir / AUDIT_FILE)

    async def append(self, entry: dict[str, Any]) -> None:
        line = json.dumps({"at": round(time.time(), 3), **entry}, separators=(",", ":"))
        await asyncio.get_running_loop().run_in_executor(
            self._executor, self._write, (line + "\n").encode()
        )

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.write(self._fd, data)
        os.fsync(self._fd)

    async def query(
        self,
        *,
        recording: str | None = None,
        session: str | None = None,
        since: float | None = None,
        until: float | None = None,
        action: str | None = None,
        limit: int = MAX_AUDIT_RESULTS,
    ) -> list[dict[str, Any]]:
        """Matching entries, newest first."""

        def match(e: dict[str, Any]) -> bool:
            return (
                (recording is None or e.get("recording") == recording)
                and (session is None or e.get("session") == session)
                and (since is None or float(e.get("at", 0)) >= since)
                and (until is None or float(e.get("at", 0)) < until)
                and (action is None or e.get("action") == action)
            )

        limit = max(1, min(limit, MAX_AUDIT_RESULTS))
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._read, match, limit
        )

    def _read(self, match: Callable[[dict[str, Any]], bool], limit: int) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        found: list[dict[str, Any]] = []
        for line in reversed(self.path.read_bytes().splitlines()):
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn last line after a crash
            if isinstance(entry, dict) and match(entry):
                found.append(entry)
                if len(found) >= limit:
                    break
        return found

    async def close(self) -> None:
        def close() -> None:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)
