"""The recording's review file plays in Chromium: picture and sound."""

from __future__ import annotations

import pytest

from server.recording.manifest import read_manifest
from testkit.browser import Opener
from testkit.peers import wait_for
from testkit.server import LiveServer

pytestmark = pytest.mark.browser


@pytest.mark.slow
async def test_classroom_review_file_plays_in_chromium(
    live_server: LiveServer, open_tab: Opener
) -> None:
    session = await live_server.create_session()
    async with live_server.classroom(session.id, mic=True) as (_, coach):
        video = coach.tracks(source="camera")[0]
        await wait_for(lambda: video.frames > 90, timeout=20)
        await live_server.manager.end_session(session.id)

    (row,) = await live_server.catalog.recordings(session.id)
    review = read_manifest(row.directory)["review"]["classroom"]
    token = live_server.invite(session.id, "teacher")
    tab = await open_tab(f"/recordings/{row.id}/{review}?token={token}", name="review")
    await tab.page.wait_for_selector("video")
    await tab.js("document.querySelector('video').muted = true")
    await tab.js("document.querySelector('video').play()")
    await tab.wait(
        "(() => { const v = document.querySelector('video');"
        " return v.videoWidth === 320 && v.currentTime > 1.0"
        " && v.webkitAudioDecodedByteCount > 0 && !v.error; })()",
        timeout=20,
    )
    assert tab.errors == []
