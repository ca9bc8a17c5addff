"""kill -9 in the middle of a recorded lesson: on restart the server
finalizes the recording, and it plays up to at most 2 s before the kill."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import av
import pytest

from server.recording.manifest import read_manifest
from server.storage.lessons import open_lessons
from server.storage.sessions import SessionSettings
from testkit.peers import Participant, PatternVideoTrack, ToneTrack, wait_for
from testkit.server import TEST_SECRET
from tests.test_recording import ffprobe_frames

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
MAX_LOSS_MS = 2000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECOACH_")}
        env.update(SIDECOACH_SECRET=TEST_SECRET, SIDECOACH_LOG_LEVEL="INFO")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "server",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    "--ice-listen-ips",
                    "127.0.0.1",
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.proc.poll() is None, self.log.read_text()
                try:
                    async with http.get(self.url + "/healthz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                await asyncio.sleep(0.1)

    def kill(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=30)


@pytest.mark.slow
async def test_sigkill_mid_recording_is_recovered_on_restart(tmp_path: Path) -> None:
    store = await open_lessons(tmp_path)
    session = await store.create(
        title="Crash lesson", teacher_name="Ms. Rivera", settings=SessionSettings()
    )
    await store.close()
    from server.core.tokens import issue_invite

    server = ServerProcess(tmp_path, free_port())
    teacher = Participant(server.url, issue_invite(TEST_SECRET, session.id, "teacher", ttl_s=600))  # type: ignore[arg-type]
    coach = Participant(server.url, issue_invite(TEST_SECRET, session.id, "coach", ttl_s=600))  # type: ignore[arg-type]
    try:
        await server.start()
        await teacher.join()
        await teacher.publish(PatternVideoTrack(), "camera")
        await teacher.publish(ToneTrack(), "mic")
        await coach.join()
        await wait_for(lambda: len(coach.received) == 2)
        video = coach.tracks(source="camera")[0]
        await wait_for(lambda: video.frames > 120, timeout=20)  # about 4 s of lesson
        killed_at = time.time()
        server.kill(signal.SIGKILL)
    finally:
        await teacher.close()
        await coach.close()
        server.kill(signal.SIGKILL)

    (directory,) = list((tmp_path / "recordings" / session.id).iterdir())
    assert read_manifest(directory)["state"] == "recording"  # unfinished, as left

    try:
        await server.start()
        assert "Recovered unfinished recording" in server.log.read_text()
    finally:
        server.kill(signal.SIGTERM)

    manifest = read_manifest(directory)
    assert manifest["state"] == "recovered"
    killed_ms = (killed_at - manifest["clock_wall_start"]) * 1000
    for source in ("camera", "mic"):
        track = next(t for t in manifest["tracks"] if t["source"] == source)
        path = directory / track["file"]
        assert ffprobe_frames(path) == track["frames"] > 0
        print(f"{source}: plays to {track['end_ms']} ms; killed at {killed_ms:.0f} ms")
        assert track["end_ms"] >= killed_ms - MAX_LOSS_MS
    # it plays: the last second decodes into real pictures
    camera = next(t for t in manifest["tracks"] if t["source"] == "camera")
    with av.open(str(directory / camera["file"])) as f:
        frames = list(f.decode(video=0))
    assert len(frames) == camera["frames"] and frames[-1].width == 320
    with av.open(str(directory / manifest["review"]["classroom"])) as f:
        assert {s.type for s in f.streams} == {"video", "audio"}
