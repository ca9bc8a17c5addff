"""What the pages say about the lesson, in Chromium against the real server:
before going live (the recording plan, which the teacher can change), live
(Stop asks first and sits under Pause), after the end (no "Recording", no
pause button; the teacher's recordings with delete and who watched), named
coaches, a blocked autoplay, a phone-sized teacher page."""

from __future__ import annotations

import pytest

from testkit.browser import Opener, Tab, new_tab, page_errors
from testkit.server import LiveServer

pytestmark = pytest.mark.browser

#: the teacher page is phone-sized whatever the screen (30rem at 16px)
PHONE_WIDTH_PX = 480


def join_path(server: LiveServer, session_id: str, role: str, **kw: object) -> str:
    return "/join?token=" + server.invite(session_id, role, **kw)


async def visible_text(tab: Tab) -> str:
    return str(await tab.page.inner_text("body"))


@pytest.mark.slow
async def test_before_live_the_teacher_sees_the_plan_and_decides(
    live_server: LiveServer, open_tab: Opener
) -> None:
    session = await live_server.create_session()
    teacher = await open_tab(
        join_path(live_server, session.id, "teacher"),
        "teacher",
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    coach = await open_tab(join_path(live_server, session.id, "coach", name="Dr Chen"), "coach")
    await teacher.wait("sidecoach.state === 'joined' && sidecoach.recordingPlanned")
    assert await teacher.page.inner_text("#live-state") == "Not live"
    # the plan, in words, instead of a "Recording" pill
    assert not await teacher.page.is_visible(".recording-state")
    assert "will be recorded when you go live" in await teacher.page.inner_text("#recording-plan")
    lines = {line.strip() for line in (await visible_text(teacher)).splitlines()}
    assert "Recording" not in lines and "● Recording" not in lines
    assert "kept for 30 days" in await teacher.page.inner_text("#retention")
    await teacher.screenshot("teacher-before-live")
    await coach.wait("sidecoach.state === 'joined'")
    assert "Will be recorded when the teacher goes live" in await coach.page.inner_text(
        ".recording-state"
    )

    # the teacher switches recording off for this lesson: everyone sees it
    await teacher.page.click("#plan-toggle")
    await teacher.wait("!sidecoach.recordingPlanned")
    assert "will not be recorded" in await teacher.page.inner_text("#recording-plan")
    await coach.wait("!sidecoach.recordingPlanned")
    assert await coach.page.inner_text(".recording-state") == "Not recorded"
    record = await live_server.store.get(session.id)
    decision = record.recording_decisions[-1]
    assert decision.recording is False and decision.by_role == "teacher"
    await teacher.screenshot("teacher-not-recording")

    # going live records nothing now
    await teacher.page.click("#go-live")
    await teacher.wait("sidecoach.live === 'live'")
    await coach.wait("document.querySelector('video.remote-video')?.videoWidth > 0")
    assert await teacher.js("sidecoach.recording") == "off"
    assert await live_server.catalog.recordings(session.id) == []
    assert page_errors(teacher, coach) == []


@pytest.mark.slow
async def test_stop_asks_first_and_the_ended_lesson_shows_no_recording_controls(
    live_server: LiveServer, open_tab: Opener
) -> None:
    session = await live_server.create_session()
    phone = {"width": 390, "height": 844}
    path = join_path(live_server, session.id, "teacher")
    teacher = await open_tab(path, "teacher", viewport=phone)
    coach = await open_tab(join_path(live_server, session.id, "coach", name="Dr Chen"), "coach")
    await teacher.wait("sidecoach.state === 'joined'")
    await teacher.page.click("#go-live")
    for tab in (teacher, coach):
        await tab.wait("sidecoach.recording === 'recording'")
    assert await teacher.page.inner_text(".recording-state") == "Recording"

    # Stop sits right under Pause, the same size
    pause = await teacher.page.locator("#pause-recording").bounding_box()
    stop = await teacher.page.locator("#stop").bounding_box()
    assert pause and stop
    assert abs(stop["width"] - pause["width"]) < 1 and abs(stop["height"] - pause["height"]) < 1
    assert 0 <= stop["y"] - (pause["y"] + pause["height"]) < 24
    assert abs(stop["x"] - pause["x"]) < 1

    # it asks first; "Keep teaching" keeps the lesson live
    await teacher.page.click("#stop")
    await teacher.wait("document.querySelector('#confirm').open")
    await teacher.screenshot("teacher-confirm-stop")
    await teacher.page.click("#confirm button[value=cancel]")
    await teacher.wait("!document.querySelector('#confirm').open")
    assert await teacher.js("sidecoach.live") == "live"
    await teacher.page.click("#stop")
    await teacher.page.click("#confirm-yes")
    await teacher.wait("sidecoach.live === 'off'")
    await coach.wait("sidecoach.remoteTracks.length === 0")

    # then ends the lesson for everyone (asked first too)
    await teacher.page.click("#end-lesson")
    await teacher.page.click("#confirm-yes")
    for tab in (teacher, coach):
        await tab.wait("sidecoach.state === 'ended'")
    for tab in (teacher, coach):
        lines = {line.strip() for line in (await visible_text(tab)).splitlines()}
        assert not lines & {"Recording", "Recording paused", "Pause recording"}, tab.name
        assert not await tab.page.is_visible(".recording-state")
        assert not await tab.page.is_visible("#pause-recording")
    # the teacher sees the lesson's recording, how long it is kept, and can delete it
    await teacher.wait("document.querySelectorAll('.recording-card').length === 1")
    await coach.wait("document.querySelector('.after .review-link')")  # the coach can review it
    card = await teacher.page.inner_text(".recording-card")
    assert "kept until" in card
    await teacher.screenshot("teacher-after-lesson", full_page=True)
    await coach.screenshot("coach-after-lesson")
    await teacher.page.click(".show-watchers")
    await teacher.wait("document.querySelector('.watchers:not([hidden])')")
    await teacher.page.click(".delete-recording")
    await teacher.page.click(".confirm-delete")
    await teacher.wait("document.querySelector('.no-recordings')")
    (row,) = await live_server.catalog.recordings(session.id, include_deleted=True)
    assert row.deleted and row.deleted_by is not None and row.deleted_by.startswith("teacher")

    # the invite opened again: the ended lesson, not a live page
    again = await open_tab(join_path(live_server, session.id, "coach"), "coach-later")
    await again.wait("sidecoach.loaded")
    assert "This lesson has ended" in await visible_text(again)
    assert page_errors(teacher, coach, again) == []


async def test_the_teacher_knows_which_coach_whispers_and_cues(
    live_server: LiveServer, open_tab: Opener
) -> None:
    session = await live_server.create_session()
    teacher = await open_tab(join_path(live_server, session.id, "teacher"), "teacher")
    chen = await open_tab(join_path(live_server, session.id, "coach", name="Dr Chen"), "chen")
    await teacher.wait("sidecoach.state === 'joined'")
    await teacher.page.click("#go-live")
    await chen.wait("sidecoach.whisperPublished")
    await chen.page.hover("#ptt")
    await chen.page.mouse.down()
    await teacher.wait("sidecoach.whispering.length === 1")
    assert "Dr Chen is whispering" in await teacher.page.inner_text("#whisper-indicator")
    await chen.page.mouse.up()
    await chen.page.click("button.prompt-button:has-text('Wait time')")
    await teacher.wait("sidecoach.lastCue?.shown")
    assert "from Dr Chen" in await teacher.page.inner_text(".cue-card")
    assert page_errors(teacher, chen) == []


# The browser's own policy, as a page without a tap meets it: sound does not
# play until the user taps (Chromium here runs with autoplay allowed).
BLOCK_AUTOPLAY = """
(() => {
  const real = HTMLMediaElement.prototype.play;
  let tapped = false;
  for (const ev of ["pointerdown", "keydown"]) {
    addEventListener(ev, () => { tapped = true; }, true);
  }
  HTMLMediaElement.prototype.play = function () {
    if (!tapped && !this.muted) {
      return Promise.reject(new DOMException("play() needs a user gesture", "NotAllowedError"));
    }
    return real.call(this);
  };
})();
"""


@pytest.mark.slow
async def test_a_blocked_autoplay_is_impossible_to_miss(
    live_server: LiveServer, open_tab: Opener, browser: object
) -> None:
    session = await live_server.create_session()
    teacher = await open_tab(join_path(live_server, session.id, "teacher"), "teacher")
    await teacher.wait("sidecoach.state === 'joined'")
    await teacher.page.click("#go-live")
    await teacher.wait("sidecoach.live === 'live'")
    url = live_server.url + join_path(live_server, session.id, "coach")
    coach = await new_tab(browser, url, "coach-blocked", init=BLOCK_AUTOPLAY)
    page = coach.page
    try:
        await coach.wait("sidecoach.audioBlocked")
        overlay = await page.locator("#unblock-audio").bounding_box()
        stage = await page.locator("#videos").bounding_box()
        assert overlay and stage and overlay["width"] >= stage["width"] - 1  # covers the video
        assert "Tap to hear the classroom" in await page.inner_text("#unblock-audio")
        await coach.screenshot("coach-autoplay-blocked")
        await page.click("#unblock-audio")
        await coach.wait("!sidecoach.audioBlocked")
        await coach.wait(
            "[...document.querySelectorAll('audio.remote-audio')].some(a => !a.paused)"
        )
        assert not await page.is_visible("#unblock-audio")
    finally:
        await page.context.close()


LONG_DEVICE_NAMES = """
(() => {
  const real = navigator.mediaDevices.enumerateDevices.bind(navigator.mediaDevices);
  navigator.mediaDevices.enumerateDevices = async () =>
    (await real()).map((d) => ({
      deviceId: d.deviceId, groupId: d.groupId, kind: d.kind,
      label: d.label + " — Integrated Ultra-Wide HD Document Camera, a very long name (USB 3)",
      toJSON() { return this; },
    }));
})();
"""


async def test_the_teacher_page_stays_phone_sized(
    live_server: LiveServer, open_tab: Opener, browser: object
) -> None:
    session = await live_server.create_session("A lesson with a rather long title for a phone")
    url = live_server.url + join_path(live_server, session.id, "teacher")
    teacher = await new_tab(browser, url, "teacher-wide", init=LONG_DEVICE_NAMES)
    page = teacher.page
    try:
        await teacher.wait("sidecoach.state === 'joined'")
        await teacher.wait("document.querySelector('#camera-select').options.length > 0")
        assert "very long name" in await page.inner_text("#camera-select")
        width = await teacher.js("document.querySelector('#main').getBoundingClientRect().width")
        assert width <= PHONE_WIDTH_PX
        widest = await teacher.js(
            "Math.max(...[...document.querySelectorAll('#main *')]"
            ".map(e => e.getBoundingClientRect().right))"
            " - document.querySelector('#main').getBoundingClientRect().left"
        )
        assert widest <= PHONE_WIDTH_PX + 1, f"something pokes out: {widest}px"
        await teacher.screenshot("teacher-on-a-laptop")
    finally:
        await page.context.close()
