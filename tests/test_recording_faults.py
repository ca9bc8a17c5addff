"""The recording under stress: both cores busy and the event loop stalled
around a resume, a writer thread that fails, a disk that stops taking
data. Each is visible to everyone, the lesson goes on, and what is written
is right."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from server.core.config import Limits
from server.recording import track_writer
from server.recording.manifest import read_manifest
from testkit.peers import wait_for
from testkit.server import LiveServer, make_config, running_server
from tests.test_recording import recording_dir

pytestmark = pytest.mark.integration

#: CPU burners run at most this long, whatever happens to the test
BURN_S = 60


@contextlib.contextmanager
def both_cores_busy() -> Iterator[None]:
    """Two busy-looping processes (bounded in time, ended by PID)."""
    burn = f"import time\nend = time.time() + {BURN_S}\nwhile time.time() < end: pass"
    burners = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(2)]
    try:
        yield
    finally:
        for p in burners:
            p.kill()
            p.wait(timeout=10)


def packet_stamps(path: Path, kind: str) -> list[int]:
    with av.open(str(path)) as f:
        stream = f.streams.video[0] if kind == "video" else f.streams.audio[0]
        return [int(p.pts) for p in f.demux(stream) if p.pts is not None and p.size]


@pytest.mark.slow
async def test_resume_under_load_stamps_nothing_inside_the_pause(live_server: LiveServer) -> None:
    """Packets captured during a pause can still be waiting in the socket
    when the resume is handled (a loaded machine, a stalled event loop):
    they must not be written as if they came after the resume."""
    session = await live_server.create_session()
    with both_cores_busy():
        async with live_server.classroom(session.id, mic=True) as (teacher, coach):
            live = live_server.manager.get(session.id)
            assert live is not None
            await wait_for(lambda: coach.tracks(source="mic")[0].frames > 50, timeout=20)
            assert (await teacher.call("recording-pause"))["ok"]
            await wait_for(lambda: coach.got("recording-state", state="paused") != [])
            mic = coach.tracks(source="mic")[0]
            before = mic.frames
            await wait_for(lambda: mic.frames > before + 25, timeout=20)  # ~0.5 s paused
            # the loop stalls for a second (as under heavy load), then handles
            # the resume before the packets that queued up meanwhile
            time.sleep(1.0)
            live.resume_recording(live.get(teacher.joined["participantId"]))
            before = mic.frames
            await wait_for(lambda: mic.frames > before + 100, timeout=20)
            await live_server.manager.end_session(session.id)

    directory = recording_dir(live_server, session.id)
    manifest = read_manifest(directory)
    ((start, end),) = manifest["paused_spans"]
    assert end - start >= 1000
    for track in manifest["tracks"]:
        stamps = packet_stamps(directory / track["file"], track["kind"])
        inside = [t for t in stamps if start <= t < end]
        assert inside == [], f"{track['source']}: {len(inside)} frames stamped inside the pause"
        assert any(t < start for t in stamps) and any(t >= end for t in stamps)


@pytest.mark.slow
async def test_any_writer_failure_is_the_recordings_visible_error(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = track_writer.TrackWriter._write_sync
    calls = {"n": 0}

    def flaky(self: track_writer.TrackWriter, frame: object, pts_ms: int) -> None:
        calls["n"] += 1
        if calls["n"] > 40:
            raise RuntimeError("the muxer fell over")
        real(self, frame, pts_ms)  # type: ignore[arg-type]

    monkeypatch.setattr(track_writer.TrackWriter, "_write_sync", flaky)
    session = await live_server.create_session()
    async with live_server.classroom(session.id) as (teacher, coach):
        for p in (teacher, coach):
            await wait_for(lambda p=p: p.got("recording-state", state="error") != [], timeout=15)  # type: ignore[misc]
        assert "the muxer fell over" in coach.got("recording-state", state="error")[0]["reason"]
        video = coach.tracks(source="camera")[0]
        before = video.frames
        await wait_for(lambda: video.frames > before + 30)  # the lesson goes on
        await live_server.manager.end_session(session.id)
    events = read_manifest(recording_dir(live_server, session.id))
    assert events["state"] == "finalized"


@pytest.mark.slow
async def test_a_stalled_disk_stops_the_recording_instead_of_filling_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stalled = threading.Event()
    release = threading.Event()
    real_fsync = track_writer.os.fsync

    def stuck_fsync(fd: int) -> None:
        stalled.set()
        release.wait(timeout=30)  # a disk that stops answering (bounded for the test)
        real_fsync(fd)

    config = make_config(tmp_path, limits=Limits(recording_backlog_bytes=150_000))
    async with running_server(config) as server:
        session = await server.create_session()
        try:
            async with server.classroom(session.id) as (teacher, coach):
                monkeypatch.setattr(track_writer.os, "fsync", stuck_fsync)
                await wait_for(lambda: stalled.is_set(), timeout=15)
                for p in (teacher, coach):
                    await wait_for(
                        lambda p=p: p.got("recording-state", state="error") != [],  # type: ignore[misc]
                        timeout=30,
                    )
                reason = teacher.got("recording-state", state="error")[0]["reason"]
                assert "not keeping up" in reason
                live = server.manager.get(session.id)
                assert live is not None and live.recording.recorder is not None
                assert live.recording.recorder.backlog.waiting <= 150_000
                video = coach.tracks(source="camera")[0]
                before = video.frames
                await wait_for(lambda: video.frames > before + 30)  # the lesson goes on
                release.set()
                monkeypatch.setattr(track_writer.os, "fsync", real_fsync)
                await server.manager.end_session(session.id)
        finally:
            release.set()
    camera = next(t for t in read_manifest(recording_dir(server, session.id))["tracks"])
    assert camera["frames"] > 0  # what reached the disk plays
