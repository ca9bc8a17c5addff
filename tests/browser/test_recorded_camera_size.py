"""The recording keeps the best layer the camera sends: a 640x360 camera in
Chromium (which sends only two simulcast layers from a camera that small,
dropping the last encoding) is recorded and reviewed at 640x360, not at the
320x180 of its second layer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from server.recording.manifest import read_manifest
from testkit.browser import CHROMIUM, launched_chromium, teacher_gone_live
from testkit.peers import wait_for
from testkit.server import make_config, running_server

pytestmark = pytest.mark.browser


def camera_file(tmp_path: Path, width: int, height: int) -> Path:
    """A fake camera for Chromium (it loops the file): one second of ffmpeg's test picture."""
    path = tmp_path / f"camera-{width}x{height}.y4m"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc2=size={width}x{height}:rate=30", "-t", "1", "-pix_fmt", "yuv420p",
         str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


@pytest.mark.slow
async def test_a_640x360_camera_is_recorded_and_reviewed_at_640x360(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    flags = [f"--use-file-for-fake-video-capture={camera_file(tmp_path, 640, 360)}"]
    async with running_server(make_config(tmp_path)) as server:
        session = await server.create_session()
        async with launched_chromium(CHROMIUM, flags) as browser:
            await teacher_gone_live(browser, server.url, server.invite(session.id, "teacher"))
            live = server.manager.sessions[session.id]
            camera = next(p for p in live.router.producers.values() if p.kind == "video")
            recorder = next(c for c in camera.consumers.values() if c.records)
            # the camera's own size flows, and the Recorder takes it
            await wait_for(lambda: any(layer.height == 360 for layer in camera.layers), 30)
            await wait_for(
                lambda: recorder.current_layer is not None
                and camera.layers[recorder.current_layer].height == 360,
                timeout=30,
            )
            sent = [(layer.rid, layer.width, layer.height) for layer in camera.layers]
            print(f"layers a 640x360 Chromium camera sends: {sent}")
            await server.manager.end_session(session.id)
    (directory,) = list((server.config.recordings_dir / session.id).iterdir())
    review = directory / read_manifest(directory)["review"]["classroom"]
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=width,height", "-of", "json", str(review)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    (stream,) = json.loads(out.stdout)["streams"]
    assert (stream["width"], stream["height"]) == (640, 360)
