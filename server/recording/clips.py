"""Clips for an exemplar library: a from-to stretch of the classroom review
file, remuxed, never re-encoded. A clip starts at the video keyframe at or
before ``from`` (the only place a decoder can start) and ends at ``to``; its
timestamps start at 0. Made in an executor with progress, a few at a time.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from server.core.errors import LimitReached

logger = logging.getLogger(__name__)

#: clip files are named like this inside their recording's directory
CLIP_NAME = re.compile(r"^clip-[0-9a-f]{12}\.(webm|mp4)$")
#: clips being made at once (the rest wait, up to MAX_QUEUED_CLIPS)
CLIP_WORKERS = 1
MAX_QUEUED_CLIPS = 8
#: the longest clip, in ms
MAX_CLIP_MS = 20 * 60 * 1000
#: finished clip jobs remembered (their files stay on disk either way)
MAX_REMEMBERED_JOBS = 200


@dataclass
class ClipJob:
    id: str
    recording_id: str
    from_ms: int
    to_ms: int
    file: str
    state: str = "queued"  # queued | making | done | failed
    progress: float = 0.0
    start_ms: int | None = None  # where the clip really starts (a keyframe)
    error: str | None = None
    bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_client(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "recording": self.recording_id,
            "from_ms": self.from_ms,
            "to_ms": self.to_ms,
            "start_ms": self.start_ms,
            "file": self.file,
            "state": self.state,
            "progress": round(self.progress, 3),
            "error": self.error,
            "bytes": self.bytes,
        }


def cut(
    source: Path, target: Path, from_ms: int, to_ms: int, progress: Callable[[float], None]
) -> int:
    """Copy ``source``'s packets from the keyframe at or before ``from_ms``
    to ``to_ms`` (session ms of the source) into ``target``; returns where
    the clip starts. Runs in a thread."""
    with av.open(str(source)) as inp:
        streams = list(inp.streams)
        video: Any = next((s for s in streams if s.type == "video"), None)
        start_ms = from_ms
        if video is not None:  # the last keyframe at or before from_ms
            start_ms = 0
            for packet in inp.demux(video):
                if packet.pts is None or not packet.size:
                    continue
                ms = int(packet.pts * video.time_base * 1000)
                if ms > from_ms:
                    break
                if packet.is_keyframe:
                    start_ms = ms
            inp.seek(0)
        fmt = "mp4" if target.suffix == ".mp4" else "webm"
        tmp = target.with_suffix(target.suffix + ".tmp")
        with av.open(str(tmp), "w", format=fmt) as out:
            mapping = {s.index: out.add_stream_from_template(s) for s in streams}
            for packet in inp.demux(*streams):
                if packet.pts is None or not packet.size:
                    continue
                tb = packet.stream.time_base
                assert tb is not None
                ms = int(packet.pts * tb * 1000)
                if ms < start_ms:
                    continue
                if ms > to_ms:
                    if packet.stream.type == "video" or video is None:
                        break
                    continue
                shift = int(start_ms / 1000 / tb)
                packet.pts -= shift
                packet.dts = packet.pts
                packet.stream = mapping[packet.stream.index]
                out.mux(packet)
                progress(min(1.0, (ms - start_ms) / max(1, to_ms - start_ms)))
        tmp.replace(target)
    return start_ms


class ClipMaker:
    """Makes clips in the background; owned by the app (``close`` cancels)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(CLIP_WORKERS, thread_name_prefix="clips")
        self.jobs: dict[str, ClipJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def pending(self) -> int:
        return sum(j.state in ("queued", "making") for j in self.jobs.values())

    def start(
        self, recording_id: str, directory: Path, source: str, from_ms: int, to_ms: int
    ) -> ClipJob:
        if self.pending() >= MAX_QUEUED_CLIPS:
            raise LimitReached(f"at most {MAX_QUEUED_CLIPS} clips are made at once; try later")
        suffix = Path(source).suffix
        job = ClipJob(
            id=secrets.token_hex(6),
            recording_id=recording_id,
            from_ms=from_ms,
            to_ms=to_ms,
            file="",
        )
        job.file = f"clip-{job.id}{suffix}"
        self.jobs[job.id] = job
        finished = [k for k, j in self.jobs.items() if j.state in ("done", "failed")]
        for key in finished[: max(0, len(self.jobs) - MAX_REMEMBERED_JOBS)]:
            del self.jobs[key]
        task = asyncio.get_running_loop().create_task(self._make(job, directory, source))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _make(self, job: ClipJob, directory: Path, source: str) -> None:
        loop = asyncio.get_running_loop()

        def progress(p: float) -> None:
            job.progress = p

        def make() -> int:
            job.state = "making"
            return cut(directory / source, directory / job.file, job.from_ms, job.to_ms, progress)

        try:
            job.start_ms = await loop.run_in_executor(self._executor, make)
            job.bytes = (directory / job.file).stat().st_size
            job.progress, job.state = 1.0, "done"
            logger.info("clip %s of %s made (%d bytes)", job.id, job.recording_id, job.bytes)
        except asyncio.CancelledError:
            job.state, job.error = "failed", "the server stopped"
            raise
        except Exception as exc:  # a clip failing must not take anything else down
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
            logger.error("clip %s of %s failed: %s", job.id, job.recording_id, exc)

    def for_recording(self, recording_id: str) -> list[ClipJob]:
        return [j for j in self.jobs.values() if j.recording_id == recording_id]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._executor.shutdown(wait=True, cancel_futures=True)
