"""Retention: recordings older than the configured number of days are
deleted on schedule, each deletion logged."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from server.recording.catalog import RecordingCatalog

logger = logging.getLogger(__name__)


#: told the id of each recording retention deleted (its comments go too)
OnDeleted = Callable[[str], Awaitable[None]]


async def sweep(
    catalog: RecordingCatalog,
    retention_days: float,
    *,
    now: float | None = None,
    on_deleted: OnDeleted | None = None,
) -> list[str]:
    """Delete every finished recording older than ``retention_days``; returns their ids."""
    cutoff = (time.time() if now is None else now) - retention_days * 86400
    deleted: list[str] = []
    for row in await catalog.older_than(cutoff):
        await asyncio.get_running_loop().run_in_executor(None, remove_tree, row.directory)
        await catalog.mark_deleted(row.id, by="retention", at=time.time())
        if on_deleted is not None:
            await on_deleted(row.id)
        logger.info(
            "retention: deleted recording %s of session %s (started %s, %d bytes)",
            row.id,
            row.session_id,
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(row.started_at)),
            row.bytes,
        )
        deleted.append(row.id)
    return deleted


def remove_tree(directory: Path) -> None:
    """Delete a recording's files (in an executor)."""
    shutil.rmtree(directory, ignore_errors=True)


async def run_retention(
    catalog: RecordingCatalog,
    retention_days: float,
    interval_s: float,
    *,
    on_deleted: OnDeleted | None = None,
) -> None:
    """Sweep now and then every ``interval_s`` until cancelled."""
    while True:
        try:
            await sweep(catalog, retention_days, on_deleted=on_deleted)
        except Exception:
            logger.exception("retention sweep failed; will retry")
        await asyncio.sleep(interval_s)
