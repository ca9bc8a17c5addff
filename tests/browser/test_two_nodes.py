"""Pages through two nodes: the teacher's page on node A, the coach's on
node B; the lesson lives on A and everything the coach does is relayed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.core.roles import Role
from server.core.tokens import issue_invite
from testkit.browser import new_tab, page_errors, teacher_live_and_coach_watching
from testkit.multinode import SECRET, Deployment, deployment, redis_unavailable

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(redis_unavailable() is not None, reason=str(redis_unavailable())),
]

#: a WebAudio peak above this is signal (Chromium's fake mic beeps at ~0.5)
SILENCE = 0.02


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path) as dep:
        dep.start_nodes("a", "b")
        yield dep


@pytest.mark.slow
async def test_teacher_on_a_coach_through_b(browser: Any, two_nodes: Deployment) -> None:
    dep = two_nodes
    a, b = dep.nodes["a"], dep.nodes["b"]
    await dep.wait_nodes(2)
    session_id = await dep.create_session(via=b, title="Two nodes")

    def token(role: str, name: str) -> str:
        return issue_invite(SECRET, session_id, Role(role), ttl_s=3600, name=name)

    teacher, _ = await teacher_live_and_coach_watching(
        browser, a.url, token("teacher", "Ms. Rivera"), token("observer", "Obs")
    )
    coach = await new_tab(browser, f"{b.url}/join?token={token('coach', 'Ana')}", "coach")
    await coach.wait("document.querySelector('video.remote-video')?.videoWidth > 0", timeout=40)
    assert await coach.video_playing()
    _, ready_b = await b.get("/readyz")
    assert ready_b["relayed_out"] >= 1 and ready_b["sessions"] == 0, ready_b

    # push-to-talk from the page on B reaches the teacher's ear on A
    await coach.wait("sidecoach.whisperPublished", timeout=20)
    await teacher.wait("sidecoach.remoteTracks.some(t => t.source === 'whisper')", timeout=20)
    await coach.page.hover("#ptt")
    await coach.page.mouse.down()
    await teacher.wait("sidecoach.whispering.length === 1")
    peak = await teacher.audio_peak("audio[data-source=whisper]")
    assert peak > SILENCE, f"the teacher hears no whisper (peak {peak})"
    await coach.page.mouse.up()

    # a cue through B: shown on A, acknowledged back on B
    await coach.page.click("button.prompt-button:has-text('Wait time')")
    await teacher.wait("sidecoach.lastCue?.text === 'Wait time' && sidecoach.lastCue.shown")
    await teacher.page.locator(".cue-card").first.click()
    await coach.wait(
        "sidecoach.cues.some(c => c.text === 'Wait time' && c.state === 'acknowledged')"
    )
    await coach.screenshot("two-nodes-coach-on-b")
    await teacher.screenshot("two-nodes-teacher-on-a")
    assert page_errors(teacher, coach) == []
