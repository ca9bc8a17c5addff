"""At start-up, before any session runs: finalize every recording a killed
server left unfinished, and bring the catalog in line with the disk, so that
every recording is finalized and retention covers it."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from server.recording.catalog import RECORDING, RecordingCatalog
from server.recording.finalize import finalize_directory, recover
from server.recording.manifest import ManifestState, read_manifest

logger = logging.getLogger(__name__)


async def recover_recordings(
    catalog: RecordingCatalog, recordings_dir: Path, node: str = ""
) -> list[Path]:
    """Returns the directories that were finalized after a crash. With
    several nodes sharing the data directory, only those ``node`` wrote
    (another node's are taken over when it is seen dead: ``take_over_node``)."""
    loop = asyncio.get_running_loop()
    recovered = await loop.run_in_executor(None, recover, recordings_dir, node)
    for directory in recovered:
        manifest = read_manifest(directory)
        started = float(manifest.get("started_at") or time.time())
        await catalog.add(
            directory.name,
            directory.parent.name,
            directory,
            started,
            series=manifest.get("series"),
            part=int(manifest.get("part") or 1),
            node=str(manifest.get("node") or ""),
        )
        await catalog.finish(directory.name, manifest)
        logger.warning("Recovered unfinished recording %s", directory)
    # rows the catalog still has as "recording" (the server died between
    # writing the manifest and the catalog, or before the manifest existed)
    for row in await catalog.in_state(RECORDING):
        if row.node not in ("", node):
            continue
        manifest = await loop.run_in_executor(None, read_manifest, row.directory)
        if manifest.get("state") in (ManifestState.FINALIZED, ManifestState.RECOVERED):
            await catalog.finish(row.id, manifest)
        elif row.directory.is_dir():
            manifest = await loop.run_in_executor(
                None, finalize_directory, row.directory, {"recovered": True}
            )
            await catalog.finish(row.id, manifest)
            logger.warning("Recovered unfinished recording %s", row.directory)
        else:
            await catalog.mark_deleted(row.id, by="missing at start-up", at=time.time())
            logger.warning("recording %s is missing from disk; marked deleted", row.id)
    return recovered


async def take_over_node(catalog: RecordingCatalog, dead: str, me: str) -> list[str]:
    """Finalize the recordings a dead node (sharing this data directory) was
    writing; returns their ids. Each is taken in the catalog first, so two
    nodes never finalize the same one."""
    loop = asyncio.get_running_loop()
    done: list[str] = []
    for row in await catalog.in_state(RECORDING):
        if row.node != dead or not row.directory.is_dir():
            continue
        if not await catalog.take_over(row.id, dead, me):
            continue
        manifest = await loop.run_in_executor(
            None, finalize_directory, row.directory, {"recovered": True}
        )
        await catalog.finish(row.id, manifest)
        done.append(row.id)
        logger.warning(
            "Recovered recording %s, left unfinished by node %s (gone)", row.directory, dead
        )
    return done
