"""Files a browser plays back, made from the recorded tracks at finalize
time: remuxed, never re-encoded.

* the classroom file: the first camera with the classroom mic in one file;
* a playable file per further camera;
* a thumbnail (one decoded frame, the only picture ever decoded here).

VP8 (and Opus) go in WebM, whose timestamps Chromium reports as they are:
``currentTime`` is the session clock. H.264 goes in MP4 (Chromium does not
play Matroska); MP4 files start at 0 and carry ``offset_ms``, the session
time of their first instant. A review page maps ``currentTime * 1000 +
offset_ms`` to the session clock either way.
"""

from __future__ import annotations

import heapq
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av

from server.recording.frames import keyframe_size
from server.recording.manifest import REVIEW_FILE

logger = logging.getLogger(__name__)

THUMBNAIL_FILE = "thumbnail.jpg"
#: the thumbnail shows the picture this far into the lesson (or the last one)
THUMBNAIL_AT_MS = 3000
THUMBNAIL_WIDTH = 320
#: video tracks browsers play in WebM; anything else is remuxed to MP4
WEBM_CODECS = frozenset({"vp8", "vp9", "av1", "opus", "vorbis"})


def _first_pts_ms(path: Path) -> int:
    with av.open(str(path)) as inp:
        stream: Any = inp.streams[0]
        for packet in inp.demux(stream):
            if packet.pts is not None and packet.size:
                return int(packet.pts * stream.time_base * 1000)
    return 0


def _packets(inp: Any, out_stream: Any, shift_ms: int) -> Iterator[tuple[int, int, Any]]:
    stream = inp.streams[0]
    tb = stream.time_base
    shift = int(shift_ms / 1000 / tb)
    for n, packet in enumerate(inp.demux(stream)):
        if packet.pts is None or not packet.size:
            continue
        packet.pts -= shift
        packet.dts = packet.pts
        packet.stream = out_stream
        yield int(packet.pts * tb * 1000), n * 2 + out_stream.index, packet


def _codec(path: Path) -> str:
    with av.open(str(path)) as inp:
        return str(inp.streams[0].codec_context.name)


def largest_picture(path: Path) -> tuple[int, int] | None:
    """The largest keyframe of a video track file. A simulcast camera's
    recording can start on a smaller layer (the best one was not flowing
    yet) and switch up: the file's header has the first size, review and
    clips take the largest."""
    best: tuple[int, int] | None = None
    with av.open(str(path)) as inp:
        stream: Any = inp.streams[0]
        if stream.type != "video":
            return None
        codec = str(stream.codec_context.name)
        for packet in inp.demux(stream):
            if packet.is_keyframe and packet.size:
                size = keyframe_size(codec, bytes(packet))
                if size is not None and (best is None or size[0] * size[1] > best[0] * best[1]):
                    best = size
    return best


def remux_playable(directory: Path, name: str, sources: list[Path]) -> dict[str, Any] | None:
    """Merge ``sources`` (single-track files) into one file a browser plays:
    ``{file, offset_ms}``, or None when there is nothing to merge."""
    if not sources:
        return None
    webm = all(_codec(p) in WEBM_CODECS for p in sources)
    offset = 0 if webm else min(_first_pts_ms(p) for p in sources)
    final = f"{name}.webm" if webm else f"{name}.mp4"
    tmp = directory / (final + ".tmp")
    inputs = [av.open(str(p)) for p in sources]
    try:
        fmt, options = ("webm", {}) if webm else ("mp4", {"movflags": "+faststart"})
        with av.open(str(tmp), "w", format=fmt, options=options) as out:
            streams = [out.add_stream_from_template(i.streams[0]) for i in inputs]
            for stream, path in zip(streams, sources, strict=True):
                size = largest_picture(path) if stream.type == "video" else None
                if size is not None:
                    context: Any = stream.codec_context
                    context.width, context.height = size
            merged = heapq.merge(
                *(_packets(i, s, offset) for i, s in zip(inputs, streams, strict=True))
            )
            for _, _, packet in merged:
                out.mux(packet)
    finally:
        for i in inputs:
            i.close()
    os.replace(tmp, directory / final)
    return {"file": final, "offset_ms": offset}


def write_thumbnail(directory: Path, video: Path) -> str | None:
    """A JPEG of the lesson a few seconds in (decoded once, here only)."""
    picked = None
    wanted_ms = _first_pts_ms(video) + THUMBNAIL_AT_MS
    with av.open(str(video)) as inp:
        stream: Any = inp.streams.video[0]
        for packet in inp.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue  # a damaged frame (e.g. cut by a crash): try the next
            for frame in frames:
                picked = frame
            shown_ms = picked.pts * stream.time_base * 1000 if picked and picked.pts else None
            if shown_ms is not None and shown_ms >= wanted_ms:
                break
    if picked is None:
        return None
    height = max(2, round(picked.height * THUMBNAIL_WIDTH / picked.width / 2) * 2)
    image = picked.reformat(width=THUMBNAIL_WIDTH, height=height, format="yuvj420p")
    tmp = directory / (THUMBNAIL_FILE + ".tmp")
    with av.open(str(tmp), "w", format="image2") as out:
        jpeg: Any = out.add_stream("mjpeg")
        jpeg.width, jpeg.height, jpeg.pix_fmt = THUMBNAIL_WIDTH, height, "yuvj420p"
        for packet in jpeg.encode(image):
            out.mux(packet)
        for packet in jpeg.encode(None):
            out.mux(packet)
    os.replace(tmp, directory / THUMBNAIL_FILE)
    return THUMBNAIL_FILE


def build_review_files(directory: Path, tracks: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``review`` part of the manifest for these (usable) tracks."""
    review: dict[str, Any] = {"classroom": None, "offset_ms": 0, "cameras": [], "thumbnail": None}
    cameras = [t for t in tracks if t["source"] == "camera"]
    mic = next((t for t in tracks if t["source"] == "mic"), None)
    review["whispers"] = [t["file"] for t in tracks if t["source"] == "whisper"]
    first = cameras[0] if cameras else None
    base = REVIEW_FILE.removesuffix(".webm")
    try:
        sources = [directory / t["file"] for t in (first, mic) if t is not None]
        classroom = remux_playable(directory, base, sources)
        if classroom is not None:
            review["classroom"] = classroom["file"]
            review["offset_ms"] = classroom["offset_ms"]
        for n, camera in enumerate(cameras[1:], start=2):
            path = directory / camera["file"]
            playable: dict[str, Any] | None
            if _codec(path) in WEBM_CODECS and path.suffix == ".webm":
                playable = {"file": camera["file"], "offset_ms": 0}
            else:
                playable = remux_playable(directory, f"camera-{n}", [path])
            if playable is not None:
                review["cameras"].append({**playable, "producer": camera.get("producer")})
    except (OSError, ValueError, av.error.FFmpegError) as exc:
        logger.error("%s: no review file: %s", directory, exc)
    if first is not None:
        try:
            review["thumbnail"] = write_thumbnail(directory, directory / first["file"])
        except (OSError, ValueError, av.error.FFmpegError) as exc:
            logger.error("%s: no thumbnail: %s", directory, exc)
    return review
