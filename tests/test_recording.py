"""Recording a live session: files ffprobe and PyAV can read, every frame
accounted for, tracks aligned on the session clock, events where they
happened, pause/resume, a full disk, retention, and members-only access."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import pytest

from server.recording.manifest import read_manifest, read_track_metas
from server.recording.retention import sweep
from testkit.peers import PatternVideoTrack, ToneTrack, wait_for
from testkit.server import LiveServer, make_config, running_server

pytestmark = pytest.mark.integration

FRAME_MS = 1000 / 30


def ffprobe_frames(path: Path) -> int:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets,codec_name",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(json.loads(out.stdout)["streams"][0]["nb_read_packets"])


def first_flash_ms(path: Path) -> float | None:
    """Session-clock ms of the first white frame in a recorded video track."""
    with av.open(str(path)) as f:
        for frame in f.decode(video=0):
            if frame.to_ndarray(format="gray").mean() > 200:
                return float(frame.pts * frame.time_base * 1000)
    return None


def first_beep_ms(path: Path) -> float | None:
    """Session-clock ms of the first loud sample in a recorded audio track."""
    with av.open(str(path)) as f:
        for frame in f.decode(audio=0):
            pcm = frame.to_ndarray().astype(np.float32)
            pcm = np.abs(pcm[0] if pcm.ndim > 1 else pcm)
            loud = np.nonzero(pcm > 0.2 * (32767 if pcm.max() > 2 else 1))[0]
            if loud.size:
                return float(
                    frame.pts * frame.time_base * 1000 + loud[0] * 1000 / frame.sample_rate
                )
    return None


def recording_dir(server: LiveServer, session_id: str) -> Path:
    dirs = list((server.config.recordings_dir / session_id).iterdir())
    assert len(dirs) == 1, dirs
    return dirs[0]


async def test_a_recorded_lesson_plays_back_aligned_with_its_events(
    live_server: LiveServer,
) -> None:
    session = await live_server.create_session()
    flash = time.time() + 3.0
    teacher = live_server.participant(session.id, "teacher")
    coach = live_server.participant(session.id, "coach")
    try:
        await teacher.join()
        # recording starts when the teacher goes live, not when someone joins
        assert teacher.joined["recording"]["state"] == "off"
        assert teacher.joined["recording"]["planned"] is True
        camera = PatternVideoTrack(flash_at=flash)
        await teacher.publish(camera, "camera")
        await wait_for(lambda: teacher.got("recording-state", state="recording") != [])
        await teacher.publish(ToneTrack(440, beep_at=flash), "mic")
        await coach.join()
        whisper = await coach.publish(ToneTrack(1000), "whisper")
        await wait_for(lambda: coach.published(whisper))
        await wait_for(lambda: time.time() >= flash, timeout=10)
        cue = await coach.call("cue", {"text": "Now: the flash"})
        assert cue["ok"]
        assert (await coach.call("whisper-start"))["ok"]
        await wait_for(lambda: teacher.tracks(producerId=whisper) != [])
        await wait_for(lambda: teacher.tracks(producerId=whisper)[0].frames > 40, timeout=10)
        assert (await coach.call("whisper-stop"))["ok"]
        assert (await coach.call("tally", {"category": "BSP"}))["ok"]
        await live_server.manager.end_session(session.id)
    finally:
        await teacher.close()
        await coach.close()

    directory = recording_dir(live_server, session.id)
    manifest = read_manifest(directory)
    assert manifest["state"] == "finalized"
    tracks = {t["source"]: t for t in manifest["tracks"]}
    assert set(tracks) == {"camera", "mic", "whisper"}
    for source, track in tracks.items():
        path = directory / track["file"]
        # ffprobe and PyAV both read every track, and every frame the
        # Recorder took in is in the file
        assert ffprobe_frames(path) == track["frames"] > 0, source
        assert manifest["frames_received"][track["file"]] == track["frames"], source
    assert tracks["camera"]["width"] == 320
    assert {p["role"] for p in manifest["participants"].values()} == {"teacher", "coach"}

    video_ms = first_flash_ms(directory / tracks["camera"]["file"])
    audio_ms = first_beep_ms(directory / tracks["mic"]["file"])
    assert video_ms is not None and audio_ms is not None
    # the first white frame was made a little after the beep began (frames
    # come every 33 ms); take that out, and what remains is the recording's error
    assert camera.flashed_at is not None
    made_later_ms = (camera.flashed_at - flash) * 1000
    error_ms = (video_ms - audio_ms) - made_later_ms
    print(f"flash {video_ms:.1f} ms, beep {audio_ms:.1f} ms, misalignment {error_ms:.1f} ms")
    assert abs(error_ms) <= FRAME_MS  # aligned within one frame

    events = [json.loads(line) for line in (directory / "events.jsonl").read_text().splitlines()]
    by_type = {e["type"]: e for e in events}
    for kind in ("join", "cue", "cue-delivered", "whisper-start", "whisper-stop", "tally"):
        assert kind in by_type, kind
    # the cue was sent the moment the flash began: it sits there on the clock
    # (within a frame of capture plus a signaling round trip)
    assert abs(by_type["cue"]["t"] - video_ms) < 250
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    # whisper audio was recorded only while the coach held the button
    whisper_track = tracks["whisper"]
    assert by_type["whisper-start"]["t"] - 200 <= whisper_track["start_ms"]
    assert whisper_track["end_ms"] <= by_type["whisper-stop"]["t"] + 200

    # the review file plays the classroom (camera + mic) in one WebM
    review = directory / manifest["review"]["classroom"]
    with av.open(str(review)) as f:
        assert {s.type for s in f.streams} == {"video", "audio"}
    assert manifest["review"]["whispers"] == [whisper_track["file"]]


@pytest.mark.slow
async def test_pause_and_resume_leave_a_gap_and_tell_everyone(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    async with live_server.classroom(session.id) as (teacher, coach):
        await wait_for(lambda: coach.tracks(source="camera")[0].frames > 30)
        paused = await teacher.call("recording-pause")
        assert paused["recording"]["state"] == "paused"
        assert (await coach.call("recording-pause"))["error"]["code"] == "forbidden"
        for p in (teacher, coach):
            await wait_for(lambda p=p: p.got("recording-state", state="paused") != [])  # type: ignore[misc]
        video = next(iter(coach.received.values()))
        before = video.frames
        await wait_for(lambda: video.frames > before + 45)  # live video carries on
        assert (await teacher.call("recording-resume"))["ok"]
        await wait_for(lambda: coach.got("recording-state", state="recording") != [])
        before = video.frames
        await wait_for(lambda: video.frames > before + 30)
        await live_server.manager.end_session(session.id)

    directory = recording_dir(live_server, session.id)
    events = [json.loads(line) for line in (directory / "events.jsonl").read_text().splitlines()]
    t_pause = next(e["t"] for e in events if e["type"] == "recording-pause")
    t_resume = next(e["t"] for e in events if e["type"] == "recording-resume")
    camera = next(t for t in read_manifest(directory)["tracks"] if t["source"] == "camera")
    with av.open(str(directory / camera["file"])) as f:
        stamps = [int(p.pts) for p in f.demux(video=0) if p.pts is not None and p.size]
    assert any(t < t_pause for t in stamps) and any(t > t_resume for t in stamps)
    inside = [t for t in stamps if t_pause + 50 < t < t_resume - 50]
    assert inside == [], "frames were written while paused"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="needs root to mount")
@pytest.mark.slow
async def test_a_full_disk_stops_recording_visibly_and_the_lesson_goes_on(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config.recordings_dir.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(config.recordings_dir)],
        check=True,
    )
    try:
        async with running_server(config) as server:
            session = await server.create_session()
            teacher = server.participant(session.id, "teacher")
            coach = server.participant(session.id, "coach")
            try:
                await teacher.join()
                await teacher.publish(PatternVideoTrack(), "camera")
                await coach.join()
                for p in (teacher, coach):
                    await wait_for(
                        lambda p=p: p.got("recording-state", state="error") != [],  # type: ignore[misc]
                        timeout=30,
                    )
                reason = coach.got("recording-state", state="error")[0]["reason"]
                assert "No space" in reason or "ENOSPC" in reason or "28" in reason, reason
                video = next(iter(coach.received.values()))
                before = video.frames
                await wait_for(lambda: video.frames > before + 30)  # the lesson goes on
                assert (await coach.call("tally", {"category": "OTR"}))["ok"]
                await server.manager.end_session(session.id)
            finally:
                await teacher.close()
                await coach.close()
        directory = next((config.recordings_dir / session.id).iterdir())
        camera = next(p for p in directory.iterdir() if "camera" in p.name)
        assert ffprobe_frames(camera) > 0  # what was written before the disk filled is intact
    finally:
        subprocess.run(["umount", str(config.recordings_dir)], check=False)


async def test_retention_deletes_old_recordings_and_logs_each(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    root = live_server.config.recordings_dir
    now = time.time()
    for rid, age_days in (("r-old", 40), ("r-older", 400), ("r-new", 2)):
        directory = root / "s-x" / rid
        directory.mkdir(parents=True)
        (directory / "01-camera.webm").write_bytes(b"x" * 100)
        await live_server.catalog.add(rid, "s-x", directory, now - age_days * 86400)
        await live_server.catalog.finish(rid, {"state": "finalized", "bytes": 100})
    with caplog.at_level(logging.INFO, logger="server.recording.retention"):
        deleted = await sweep(live_server.catalog, retention_days=30, now=now)
    assert sorted(deleted) == ["r-old", "r-older"]
    assert not (root / "s-x" / "r-old").exists() and (root / "s-x" / "r-new").exists()
    assert [r.id for r in await live_server.catalog.recordings("s-x")] == ["r-new"]
    assert sum("deleted recording" in r.message for r in caplog.records) == 2


async def test_the_event_log_joins_up_and_the_manifest_is_complete(
    live_server: LiveServer,
) -> None:
    """Every cue's send, delivery and acknowledgement share its id; every
    whisper has its duration; every join has its leave before the recording
    closed; tracks say when they closed; a track with no media is no file."""
    session = await live_server.create_session()
    teacher = live_server.participant(session.id, "teacher")
    coach = live_server.participant(session.id, "coach")
    quiet = live_server.participant(session.id, "coach")  # publishes a whisper, never talks
    try:
        await teacher.join()
        await teacher.publish(PatternVideoTrack(), "camera")
        for c in (coach, quiet):
            await c.join()
            pid = await c.publish(ToneTrack(1000), "whisper")
            await wait_for(lambda c=c, pid=pid: c.published(pid))  # type: ignore[misc]
        await wait_for(lambda: coach.tracks(source="camera") != [])
        sent = []
        for text in ("Wait time", "Praise", "Proximity"):
            reply = await coach.call("cue", {"text": text})
            sent.append(reply["cue"]["id"])
        await wait_for(lambda: len(teacher.got("cue")) == 3)
        for cue_id in sent[:2]:
            assert (await teacher.call("cue-ack", {"cueId": cue_id}))["ok"]
        assert (await coach.call("whisper-start"))["ok"]
        await asyncio.sleep(0.3)
        assert (await coach.call("whisper-stop"))["ok"]
        assert (await teacher.call("recording-pause"))["ok"]
        assert (await teacher.call("recording-resume"))["ok"]
        await coach.close()  # one leaves before the end, the others at the end
        await live_server.manager.end_session(session.id)
    finally:
        for p in (teacher, coach, quiet):
            await p.close()

    directory = recording_dir(live_server, session.id)
    events = [json.loads(line) for line in (directory / "events.jsonl").read_text().splitlines()]
    by_cue: dict[str, set[str]] = {}
    for e in events:
        if e["type"].startswith("cue"):
            by_cue.setdefault(e["cue"], set()).add(e["type"])
    assert by_cue == {
        sent[0]: {"cue", "cue-delivered", "cue-ack"},
        sent[1]: {"cue", "cue-delivered", "cue-ack"},
        sent[2]: {"cue", "cue-delivered"},
    }
    stop = next(e for e in events if e["type"] == "whisper-stop")
    start = next(e for e in events if e["type"] == "whisper-start")
    assert stop["duration_ms"] == stop["t"] - start["t"] >= 250
    types = [e["type"] for e in events]
    assert "recording-pause" in types and "recording-resume" in types
    assert not any(t.startswith("recording-recording") for t in types)
    closed_at = types.index("recording-stopped")
    joins = {e["participant"] for e in events if e["type"] == "join"}
    leaves = {e["participant"] for e in events[:closed_at] if e["type"] == "leave"}
    assert joins == leaves and len(joins) == 3  # every leave, before the recording closed
    # every track the recording holds has its track-added, the camera whose
    # arrival started the recording included, and its track-removed
    added = [e["producer"] for e in events if e["type"] == "track-added"]
    removed = {e["producer"] for e in events[:closed_at] if e["type"] == "track-removed"}
    recorded = {meta.producer for meta in read_track_metas(directory)}
    assert len(added) == len(set(added)) == 3 and set(added) == removed
    assert recorded and recorded <= set(added)
    assert events[types.index("track-added")]["source"] == "camera"
    assert types.index("track-added") < types.index("recording-started")

    manifest = read_manifest(directory)
    assert {t["source"] for t in manifest["tracks"]} == {"camera", "whisper"}
    assert all(t["closed_ms"] is not None for t in manifest["tracks"])
    (empty,) = manifest["empty_tracks"]  # the quiet coach's whisper: no media, no file
    assert empty["source"] == "whisper" and "file" not in empty
    files = {p.name for p in directory.iterdir()}
    assert sum("whisper" in f for f in files) == 1
