"""One recorded track: encoded frames muxed by PyAV into WebM/Matroska
without decoding, in the recording's executor thread, crash-safe.

Crash safety: frames reach the writer thread within ``BATCH_S``, clusters
close at least every ``CLUSTER_MS``, every packet is handed to the OS at once
(``flush_packets``) and the file is fsync'd at least every
``FSYNC_INTERVAL_S``; a server killed with SIGKILL loses at most about
BATCH_S + CLUSTER_MS of a track (what reached the OS survives the process).
``finalize.py`` repairs the index of a file that was never closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from server.recording.frames import Frame, opus_head, vp8_dimensions
from server.recording.h264_sps import annexb_nals, sps_dimensions

logger = logging.getLogger(__name__)

#: a Matroska cluster is held in memory until it closes: keep them short
CLUSTER_MS = 1000
#: fsync a track file at least this often
FSYNC_INTERVAL_S = 0.5
#: frames are handed to the writer thread in batches this often
BATCH_S = 0.1
MS = fractions.Fraction(1, 1000)

CONTAINERS = {"video/vp8": ("webm", ".webm"), "audio/opus": ("webm", ".webm")}
DEFAULT_CONTAINER = ("matroska", ".mkv")
CODEC_NAMES = {"video/vp8": "vp8", "video/h264": "h264", "audio/opus": "opus"}


def container_for(mime_type: str) -> tuple[str, str]:
    return CONTAINERS.get(mime_type.lower(), DEFAULT_CONTAINER)


class Backlog:
    """Bytes handed to the writer thread and not yet written, for one
    Recording: bounded, so a stalled disk cannot fill the memory. Past the
    limit, ``on_full(waiting_bytes)`` is called (once) and nothing more is
    queued."""

    def __init__(self, limit_bytes: int, on_full: Callable[[int], None]) -> None:
        self.limit = limit_bytes
        self._on_full = on_full
        self._waiting = 0
        self._lock = threading.Lock()
        self.full = False

    @property
    def waiting(self) -> int:
        return self._waiting

    def reserve(self, n: int) -> bool:
        with self._lock:
            if self.full:
                return False
            if self._waiting + n > self.limit:
                self.full = True
                waiting = self._waiting + n
            else:
                self._waiting += n
                return True
        self._on_full(waiting)
        return False

    def release(self, n: int) -> None:
        with self._lock:
            self._waiting -= n


@dataclass
class TrackStats:
    frames_written: int = 0
    bytes_written: int = 0
    first_pts_ms: int | None = None
    last_pts_ms: int | None = None
    width: int = 0
    height: int = 0
    error: str | None = None


class TrackWriter:
    def __init__(
        self,
        path: Path,
        mime_type: str,
        executor: Executor,
        on_error: Callable[[BaseException], None],
        backlog: Backlog,
    ) -> None:
        self.path = path
        self.mime_type = mime_type
        self._executor = executor
        self._on_error = on_error
        self._backlog = backlog
        self._format, _ = container_for(mime_type)
        self._file: Any = None
        self._container: Any = None
        self._stream: Any = None
        self._last_sync = 0.0
        self._batch: list[tuple[Frame, int]] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self.stats = TrackStats()
        self.closed = False
        #: False once the recording failed: nothing more is queued (the file
        #: is still closed properly by ``close_in_executor``)
        self.accepting = True

    # -- called on the event loop ----------------------------------------

    def refuse(self) -> None:
        """Queue nothing more (the recording stopped with an error)."""
        self.accepting = False
        self._batch = []

    def write(self, frame: Frame, pts_ms: int) -> None:
        """Queue a frame; frames go to the writer thread in batches every
        ``BATCH_S`` (one thread hand-off per batch, not per frame)."""
        if self.closed or not self.accepting or self.stats.error is not None:
            return
        self._batch.append((frame, pts_ms))
        if self._flush_timer is None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(BATCH_S, self._flush)

    def _flush(self) -> None:
        self._flush_timer = None
        if self._batch:
            batch, self._batch = self._batch, []
            size = sum(len(frame.data) for frame, _ in batch)
            if not self._backlog.reserve(size):
                self.refuse()
                return
            self._executor.submit(self._write_reserved, batch, size)

    def _write_reserved(self, batch: list[tuple[Frame, int]], size: int) -> None:
        try:
            self._guarded(self._write_batch, batch)
        finally:
            self._backlog.release(size)

    def close_in_executor(self) -> Any:
        """Write what is queued, then close; returns the concurrent future."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self._flush()
        self.closed = True
        return self._executor.submit(self._guarded, self._close_sync)

    # -- executor thread --------------------------------------------------

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        if self.stats.error is not None:
            return
        try:
            fn(*args)
        except Exception as exc:  # any failure stops this track, visibly
            self.stats.error = f"{type(exc).__name__}: {exc}"
            logger.error("recording %s stopped: %s", self.path.name, exc)
            self._abandon()
            self._on_error(exc)

    def _open(self, frame: Frame) -> bool:
        mime = self.mime_type.lower()
        width = height = 0
        if mime.startswith("video/"):
            dims = (
                vp8_dimensions(frame.data)
                if mime == "video/vp8"
                else next(filter(None, map(sps_dimensions, annexb_nals(frame.data))), None)
            )
            if dims is None:
                return False  # wait for a keyframe: the header needs the size
            width, height = dims
        self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115 - closed in _close_sync
        self._container = av.open(
            self._file,
            "w",
            format=self._format,
            options={"cluster_time_limit": str(CLUSTER_MS), "flush_packets": "1"},
        )
        codec = CODEC_NAMES.get(mime, "h264")
        if mime.startswith("video/"):
            # a stream for muxing only: no encoder is ever opened
            stream = self._container.add_mux_stream(codec, width=width, height=height, time_base=MS)
            self.stats.width, self.stats.height = width, height
        else:
            # Opus needs its OpusHead as codec private data, which only a
            # codec context can carry; the encoder is opened but never fed
            stream = self._container.add_stream(codec, rate=48000)
            stream.time_base = MS
            stream.codec_context.extradata = opus_head()
        self._stream = stream
        return True

    def _write_batch(self, batch: list[tuple[Frame, int]]) -> None:
        for frame, pts_ms in batch:
            self._write_sync(frame, pts_ms)

    def _write_sync(self, frame: Frame, pts_ms: int) -> None:
        if self._container is None and not self._open(frame):
            return
        stats = self.stats
        if stats.last_pts_ms is not None and pts_ms <= stats.last_pts_ms:
            pts_ms = stats.last_pts_ms + 1
        packet = av.Packet(frame.data)
        packet.stream = self._stream
        packet.pts = packet.dts = pts_ms
        packet.time_base = MS
        packet.is_keyframe = frame.keyframe
        self._container.mux(packet)
        stats.frames_written += 1
        stats.bytes_written += len(frame.data)
        if stats.first_pts_ms is None:
            stats.first_pts_ms = pts_ms
        stats.last_pts_ms = pts_ms
        now = time.monotonic()
        if now - self._last_sync >= FSYNC_INTERVAL_S:
            os.fsync(self._file.fileno())
            self._last_sync = now

    def _close_sync(self) -> None:
        if self._container is not None:
            self._container.close()
            os.fsync(self._file.fileno())
            self._file.close()
            self._container = self._file = None

    def _abandon(self) -> None:
        """After a write error: let go of the file without writing more."""
        for closer in (self._container, self._file):
            if closer is not None:
                with contextlib.suppress(OSError, av.error.FFmpegError):
                    closer.close()
        self._container = self._file = None
