"""Finalize a Recording directory: repair track files a crash left without
an index, measure every track, build the browser-playable review files
(``review_files``: remuxed, never re-encoded) and write the manifest. Runs in
an executor thread; also used on start-up (``recover``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import av

from server.recording.event_log import read_events
from server.recording.manifest import (
    EVENTS_FILE,
    MANIFEST_FILE,
    ManifestState,
    TrackMeta,
    read_manifest,
    read_track_metas,
    write_manifest,
)
from server.recording.review_files import build_review_files, largest_picture

logger = logging.getLogger(__name__)


def remux(src: Path, dst: Path, fmt: str) -> None:
    """Copy every packet of ``src`` into a freshly indexed ``dst``."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=fmt) as out:
        mapping = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None or not packet.size:
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)


def probe(path: Path) -> dict[str, Any]:
    """Frames and time range of a single-track file, from its packets."""
    frames = 0
    first = last = None
    with av.open(str(path)) as inp:
        stream: Any = inp.streams[0]
        tb = stream.time_base or 1
        for packet in inp.demux(stream):
            if packet.pts is None or not packet.size:
                continue
            frames += 1
            ms = int(packet.pts * tb * 1000)
            first = ms if first is None else min(first, ms)
            last = ms if last is None else max(last, ms)
        info: dict[str, Any] = {"frames": frames, "start_ms": first, "end_ms": last}
        if stream.type == "video":
            info["width"], info["height"] = stream.codec_context.width, stream.codec_context.height
    if info.get("width") is not None:
        size = largest_picture(path)
        if size is not None:
            info["width"], info["height"] = size
    return info


def finalize_directory(directory: Path, extra: dict[str, Any]) -> dict[str, Any]:
    manifest = read_manifest(directory)
    crashed = bool(extra.pop("recovered", False))
    tracks: list[dict[str, Any]] = []
    for meta in read_track_metas(directory):
        tracks.append(_finalize_track(directory, meta, repair=crashed))
    events = read_events(directory / EVENTS_FILE)
    participants: dict[str, dict[str, str]] = {}
    for event in events:
        if event.get("type") == "join":
            participants[str(event.get("participant"))] = {
                "role": str(event.get("role")),
                "name": str(event.get("name")),
            }
    usable = [t for t in tracks if t.get("frames")]
    # a track that never carried media is not a file of this recording
    empty = [_drop_empty(directory, t) for t in tracks if not t.get("frames")]
    review = build_review_files(directory, usable)
    ends = [t["end_ms"] for t in usable if t.get("end_ms") is not None]
    starts = [t["start_ms"] for t in usable if t.get("start_ms") is not None]
    files = [p for p in directory.iterdir() if p.is_file()]
    manifest.update(
        {
            "state": str(ManifestState.RECOVERED if crashed else ManifestState.FINALIZED),
            "tracks": usable,
            "empty_tracks": empty,
            "events_file": EVENTS_FILE,
            "event_count": len(events),
            "participants": participants,
            "review": review,
            "start_ms": min(starts) if starts else None,
            "end_ms": max(ends) if ends else None,
            "duration_ms": (max(ends) - min(starts)) if ends and starts else 0,
            "bytes": sum(p.stat().st_size for p in files if p.name != MANIFEST_FILE),
            **extra,
        }
    )
    try:
        write_manifest(directory, manifest)
    except OSError as exc:
        # a full disk: the media stays as written; the next start-up retries
        logger.error("%s: manifest not written: %s", directory, exc)
        manifest["manifest_error"] = str(exc)
    return manifest


def _drop_empty(directory: Path, track: dict[str, Any]) -> dict[str, Any]:
    """Describe a track without media; remove its file unless it holds
    bytes nobody could read (kept for inspection)."""
    name = track.pop("file")
    if not track.get("unreadable"):
        (directory / name).unlink(missing_ok=True)
    else:
        track["kept_file"] = name
    return track


def _finalize_track(directory: Path, meta: TrackMeta, *, repair: bool) -> dict[str, Any]:
    path = directory / meta.file
    entry: dict[str, Any] = asdict(meta)
    if not path.exists() or path.stat().st_size == 0:
        entry.update(frames=0, bytes=0, missing=True)
        return entry
    try:
        if repair:
            fixed = path.with_suffix(".fixed" + path.suffix)
            remux(path, fixed, "webm" if path.suffix == ".webm" else "matroska")
            os.replace(fixed, path)
        entry.update(probe(path))
    except (OSError, av.error.FFmpegError) as exc:
        logger.error("%s: track %s unreadable: %s", directory, meta.file, exc)
        entry.update(frames=0, unreadable=str(exc))
    entry["bytes"] = path.stat().st_size
    return entry


def recover(recordings_root: Path, node: str = "") -> list[Path]:
    """Finalize every recording a killed server left unfinished (with
    several nodes sharing the directory: those ``node`` wrote)."""
    done: list[Path] = []
    if not recordings_root.exists():
        return done
    for manifest_path in sorted(recordings_root.glob(f"*/*/{MANIFEST_FILE}")):
        directory = manifest_path.parent
        manifest = read_manifest(directory)
        if manifest.get("state") == ManifestState.RECORDING and manifest.get("node", "") in (
            "",
            node,
        ):
            logger.warning("recovering unfinished recording %s", directory)
            finalize_directory(directory, {"recovered": True})
            done.append(directory)
    return done
