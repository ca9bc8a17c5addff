"""A Recording's files: the manifest (what is there), the per-track metadata
log (written as tracks open, so a crash can be recovered) and names."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

MANIFEST_FILE = "manifest.json"
TRACKS_FILE = "tracks.jsonl"
EVENTS_FILE = "events.jsonl"
REVIEW_FILE = "classroom.webm"


class ManifestState(StrEnum):
    RECORDING = "recording"  # being written (or the server died while it was)
    FINALIZED = "finalized"  # closed normally
    RECOVERED = "recovered"  # finalized on start-up after a crash


@dataclass
class TrackMeta:
    file: str
    producer: str
    participant: str
    role: str
    source: str
    kind: str
    codec: str
    clock_rate: int
    opened_ms: int
    closed_ms: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrackMeta:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _fsync_write(path: Path, data: bytes, *, append: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def append_track_meta(directory: Path, meta: TrackMeta) -> None:
    _fsync_write(directory / TRACKS_FILE, (json.dumps(asdict(meta)) + "\n").encode(), append=True)


def append_track_close(directory: Path, file: str, closed_ms: int) -> None:
    """A track stopped (its publisher left, or the recording ended)."""
    line = json.dumps({"file": file, "closed_ms": closed_ms}) + "\n"
    _fsync_write(directory / TRACKS_FILE, line.encode(), append=True)


def read_track_metas(directory: Path) -> list[TrackMeta]:
    """Every track opened, with when it closed (if its close was written)."""
    path = directory / TRACKS_FILE
    metas: dict[str, TrackMeta] = {}
    if path.exists():
        for line in path.read_bytes().splitlines():
            try:
                data = json.loads(line)
                if "producer" in data:
                    meta = TrackMeta.from_json(data)
                    metas[meta.file] = meta
                elif data.get("file") in metas:
                    metas[data["file"]].closed_ms = int(data["closed_ms"])
            except (ValueError, TypeError, KeyError, AttributeError):
                continue  # a torn last line after a crash
    return list(metas.values())


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Atomically replace the manifest."""
    tmp = directory / (MANIFEST_FILE + ".tmp")
    _fsync_write(tmp, json.dumps(manifest, indent=2, default=str).encode(), append=False)
    os.replace(tmp, directory / MANIFEST_FILE)


def read_manifest(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
