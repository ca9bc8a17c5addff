"""Computing a recording's measures off the event loop, with progress.

One ``MeasureRuns`` per node: a recording finalized here (``catalog``'s
finished hook), a reader finding no measures yet (a restart, a recording
recovered or finalized elsewhere), or a ``recompute`` request schedules a
run; runs go through a small thread pool of ``MEASURE_WORKERS`` threads (a
decode is CPU-bound: one lesson at a time leaves the other cores to live
media). The result, or the reason it failed, is ``measures.json`` beside the
manifest, so it survives restarts and is read by any node that reads the
recording's directory. Progress lives in memory on the node computing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.core.tasks import TaskOwner
from server.recording.manifest import MANIFEST_FILE
from server.recording.measures import (
    DEFINITIONS,
    MEASURES_VERSION,
    compute,
    read_measures,
    write_measures,
)

logger = logging.getLogger(__name__)

#: threads computing measures at once (per node)
MEASURE_WORKERS = 1


class Stopping(Exception):
    """The node is shutting down: the run stops at its next progress report."""


@dataclass
class Run:
    progress: float = 0.0
    again: bool = False  # a recompute was asked while this run was going


class MeasureRuns:
    def __init__(self, workers: int = MEASURE_WORKERS) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="measures")
        self._tasks = TaskOwner("measures")
        self._runs: dict[str, Run] = {}
        self._stopping = False

    def schedule(self, recording_id: str, directory: Path) -> None:
        """Compute (again) the measures of this recording, soon."""
        run = self._runs.get(recording_id)
        if run is not None:
            run.again = True
            return
        self._runs[recording_id] = Run()
        self._tasks.spawn(self._run(recording_id, directory), name=f"measures {recording_id}")

    async def _run(self, recording_id: str, directory: Path) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                run = self._runs[recording_id]
                run.again, run.progress = False, 0.0

                def progress(p: float, run: Run = run) -> None:
                    if self._stopping:
                        raise Stopping
                    run.progress = max(run.progress, min(1.0, p))

                body = await loop.run_in_executor(
                    self._executor, _compute_and_store, directory, progress
                )
                logger.info(
                    "measures of %s: %s in %.2f s",
                    recording_id,
                    body["status"],
                    body.get("compute_s", 0.0),
                )
                if not run.again:
                    return
        finally:
            self._runs.pop(recording_id, None)

    def status(self, recording_id: str, directory: Path) -> dict[str, Any]:
        """``{status, progress?, reason?, values?, definitions}`` (blocking
        read of the file: call it in an executor)."""
        run = self._runs.get(recording_id)
        if run is not None:
            return {"status": "computing", "progress": round(run.progress, 3)}
        stored = read_measures(directory)
        if stored is None:
            return {"status": "pending"}
        return stored

    def computing(self, recording_id: str) -> bool:
        return recording_id in self._runs

    async def close(self) -> None:
        self._stopping = True
        await self._tasks.aclose()
        self._executor.shutdown(wait=True, cancel_futures=True)


def _compute_and_store(directory: Path, progress: Any) -> dict[str, Any]:
    """In the executor: compute, then write done or failed (never raises
    but for ``Stopping``, which leaves the last stored file as it was)."""
    try:
        values = compute(directory, progress)
        body = {
            "version": MEASURES_VERSION,
            "status": "done",
            "computed_at": time.time(),
            "compute_s": values.pop("compute_s"),
            "values": values,
        }
    except Stopping:
        return {"status": "stopped"}
    except Exception as exc:  # a damaged file, a missing track...: say why
        logger.exception("measures of %s failed", directory)
        body = {
            "version": MEASURES_VERSION,
            "status": "failed",
            "computed_at": time.time(),
            "reason": f"{type(exc).__name__}: {exc}"[:300],
        }
    if not (directory / MANIFEST_FILE).exists():
        return body  # deleted meanwhile: leave nothing behind in its directory
    try:
        write_measures(directory, body)
    except OSError as exc:
        logger.error("%s: measures not written: %s", directory, exc)
    return body


__all__ = ["DEFINITIONS", "MEASURE_WORKERS", "MeasureRuns"]
