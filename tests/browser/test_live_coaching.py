"""Teacher, coach and observer pages in a real Chromium against the real
server: live video and audio, push-to-talk whispers, cues with delivery and
acknowledgement."""

from __future__ import annotations

import pytest

from testkit.browser import SILENCE, Opener, page_errors
from testkit.server import LiveServer

pytestmark = pytest.mark.browser

#: a WebAudio peak above this is signal (Chromium's fake mic beeps at ~0.5)


def join_path(server: LiveServer, session_id: str, role: str, **kw: object) -> str:
    return "/join?token=" + server.invite(session_id, role, **kw)


@pytest.mark.slow
async def test_classroom_whisper_and_cue(live_server: LiveServer, open_tab: Opener) -> None:
    session = await live_server.create_session("Fractions, period 3")
    teacher = await open_tab(
        join_path(live_server, session.id, "teacher", name="Ms. Rivera"),
        "teacher",
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    await teacher.wait("window.sidecoach && sidecoach.state === 'joined'")
    await teacher.page.click("#go-live")
    await teacher.wait("sidecoach.live === 'live'")

    coach = await open_tab(join_path(live_server, session.id, "coach", name="Ana"), "coach")
    observer = await open_tab(join_path(live_server, session.id, "observer"), "observer")
    for viewer in (coach, observer):
        await viewer.wait("sidecoach.remoteTracks.filter(t => t.kind === 'video').length >= 1")
        await viewer.wait("document.querySelector('video.remote-video')?.videoWidth > 0")
        assert await viewer.video_playing()
        peak = await viewer.audio_peak("audio[data-source=mic]")
        assert peak > SILENCE, f"{viewer.name} hears no classroom audio (peak {peak})"

    # push-to-talk: the teacher gets the whisper track; the observer never does
    await coach.wait("sidecoach.whisperPublished")
    await teacher.wait("sidecoach.remoteTracks.some(t => t.source === 'whisper')")
    await coach.page.hover("#ptt")
    await coach.page.mouse.down()
    await coach.wait("sidecoach.ptt === 'live'")
    assert await coach.page.is_visible("#whisper-banner")
    await teacher.wait("sidecoach.whispering.length === 1")
    assert "Ana" in await teacher.page.inner_text("#whisper-indicator")
    peak = await teacher.audio_peak("audio[data-source=whisper]")
    assert peak > SILENCE, f"the teacher hears no whisper (peak {peak})"
    await teacher.screenshot("teacher-live-whisper")
    await coach.screenshot("coach-whispering")
    await coach.page.mouse.up()
    await coach.wait("sidecoach.ptt === 'idle'")
    await teacher.wait("sidecoach.whispering.length === 0")
    assert not await coach.page.is_visible("#whisper-banner")

    # space bar works too
    await coach.page.focus("body")
    await coach.page.keyboard.down("Space")
    await coach.wait("sidecoach.ptt === 'live'")
    await coach.page.keyboard.up("Space")
    await coach.wait("sidecoach.ptt === 'idle'")

    # a cue from the library: shown, delivered, tapped, acknowledged
    await coach.page.click("button.prompt-button:has-text('Wait time')")
    await teacher.wait("sidecoach.lastCue?.text === 'Wait time' && sidecoach.lastCue.shown")
    card = teacher.page.locator(".cue-card").first
    assert "Wait time" in await card.inner_text()
    await coach.wait("sidecoach.cues.some(c => c.text === 'Wait time' && c.state !== 'sent')")
    await teacher.screenshot("teacher-cue")
    await card.click()
    await teacher.wait("sidecoach.lastCue.acked && !document.querySelector('.cue-card')")
    await coach.wait(
        "sidecoach.cues.some(c => c.text === 'Wait time' && c.state === 'acknowledged')"
    )
    assert "seen by the teacher" in await coach.page.inner_text("#cue-log")

    # a free-text cue with an icon and a tone
    await coach.page.fill("#cue-text", "Ask Sam to explain")
    await coach.page.select_option("#cue-icon", "❓")
    await coach.page.check("#cue-tone")
    await coach.page.click("#cue-form button[type=submit]")
    await teacher.wait("sidecoach.lastCue?.text === 'Ask Sam to explain' && sidecoach.tones >= 1")
    await coach.wait(
        "sidecoach.cues.some(c => c.text === 'Ask Sam to explain' && c.state === 'delivered')"
    )

    await coach.screenshot("coach", full_page=True)
    await observer.screenshot("observer")
    await teacher.screenshot("teacher", full_page=True)
    assert all(t["source"] != "whisper" for t in await observer.js("sidecoach.remoteTracks"))
    assert await observer.js("sidecoach.whispering.length") == 0
    assert page_errors(teacher, coach, observer) == []
