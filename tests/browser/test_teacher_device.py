"""A teacher device that stays up for a whole lesson (issue 21, part 7): the
screen kept awake while live, and a camera the device ended brought back
with one tap, its frames reaching the coach again on the same sender."""

from __future__ import annotations

from typing import Any

import pytest

from testkit.browser import Tab, page_errors, teacher_live_and_coach_watching
from testkit.server import LiveServer
from tests.browser.test_every_screen import SIZES

pytestmark = pytest.mark.browser

#: frames the coach's page has decoded from the classroom camera
FRAMES_DECODED = """(async () => {
    const stats = await sidecoach.pc.getStats();
    let n = 0;
    stats.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0;
    });
    return n;
})()"""


#: every wake lock sentinel the page is given, kept in ``window.__wakeLocks``
KEEP_WAKE_LOCKS = """(() => {
    window.__wakeLocks = [];
    if (!navigator.wakeLock) return;
    const request = navigator.wakeLock.request.bind(navigator.wakeLock);
    navigator.wakeLock.request = async (type) => {
        const lock = await request(type);
        window.__wakeLocks.push(lock);
        return lock;
    };
})();"""


async def frames_in(coach: Tab, seconds: float) -> int:
    """Frames the coach decoded over ``seconds``."""
    before = await coach.js(FRAMES_DECODED)
    await coach.page.wait_for_timeout(seconds * 1000)
    return int(await coach.js(FRAMES_DECODED)) - int(before)


async def test_the_screen_stays_awake_while_live_and_sleeps_after_stop(
    live_server: LiveServer, open_tab: Any
) -> None:
    session = await live_server.create_session()
    teacher = await open_tab(
        "/join?token=" + live_server.invite(session.id, "teacher"), "teacher", init=KEEP_WAKE_LOCKS
    )
    await teacher.wait("window.sidecoach && sidecoach.state === 'joined'")
    assert (await teacher.js("sidecoach.wakeLock"))["state"] == "off"
    assert await teacher.js("window.__wakeLocks.length") == 0
    await teacher.page.click("#go-live")
    await teacher.wait("sidecoach.live === 'live'", timeout=40)
    # headless Chromium grants the lock: the page holds it (the browser's own sentinel)
    lock = await teacher.wait("sidecoach.wakeLock.state !== 'requesting' && sidecoach.wakeLock")
    assert lock["state"] == "held" and lock["held"], lock
    assert await teacher.js("window.__wakeLocks.filter((l) => !l.released).length") == 1

    # hidden, the browser lets go of the lock; visible again, the page asks
    # again (simulated: headless Chromium never hides a page)
    await teacher.js(
        """(async () => {
            const set = (value) => {
                Object.defineProperty(document, 'visibilityState', {value, configurable: true});
                document.dispatchEvent(new Event('visibilitychange'));
            };
            set('hidden');
            await window.__wakeLocks[0].release();
            set('visible');
        })()"""
    )
    lock = await teacher.wait("sidecoach.wakeLock.requests === 2 && sidecoach.wakeLock.held")
    assert await teacher.js("window.__wakeLocks.filter((l) => !l.released).length") == 1

    await teacher.page.click("#stop")
    await teacher.page.click("#confirm-yes")
    await teacher.wait("sidecoach.live === 'off'")
    lock = await teacher.wait("sidecoach.wakeLock.state === 'off' && sidecoach.wakeLock")
    assert not lock["held"] and lock["requests"] == 2, lock
    # every lock the page took is given back: the screen may sleep
    assert await teacher.js("window.__wakeLocks.every((l) => l.released)")
    assert page_errors(teacher) == []


@pytest.mark.slow
async def test_a_camera_the_device_ended_restarts_with_one_tap(
    live_server: LiveServer, browser: Any
) -> None:
    session = await live_server.create_session()
    teacher, coach = await teacher_live_and_coach_watching(
        browser,
        live_server.url,
        live_server.invite(session.id, "teacher"),
        live_server.invite(session.id, "coach", name="Ana"),
    )
    assert await frames_in(coach, 1.0) > 0
    producers = await teacher.js("sidecoach.published.map((p) => p.producerId)")

    # the device ends the camera (iOS does it to a background tab): the
    # track stops and fires "ended"
    await teacher.js(
        "(() => { const t = document.querySelector('[data-preview=main] video')"
        ".srcObject.getVideoTracks()[0]; t.stop(); t.dispatchEvent(new Event('ended')); })()"
    )
    await teacher.wait("sidecoach.deviceWarning === 'ended'")
    assert await teacher.page.is_visible("#device-warning")
    assert "camera stopped" in await teacher.page.inner_text("#device-warning")
    for size in SIZES.values():  # the warning fits every screen
        await teacher.page.set_viewport_size(size)
        assert await teacher.js("document.documentElement.scrollWidth <= innerWidth"), size
        assert await teacher.page.is_visible("#restart-camera")
    await coach.page.wait_for_timeout(500)
    assert await frames_in(coach, 1.5) == 0, "the coach's picture should have frozen"
    await teacher.screenshot("teacher-camera-ended")

    await teacher.page.click("#restart-camera")
    await teacher.wait("sidecoach.cameraRestarts === 1 && sidecoach.deviceWarning === null")
    assert not await teacher.page.is_visible("#device-warning")
    for _ in range(40):  # the new camera's first keyframe, then frames again
        if await frames_in(coach, 0.5) > 0:
            break
    # and they keep coming (a count, not a rate: the machine may be busy)
    assert await frames_in(coach, 2.0) > 0, "no frames reach the coach after the restart"
    assert await coach.video_playing()
    # the same producers on the same senders: no new publish, no renegotiation
    assert await teacher.js("sidecoach.published.map((p) => p.producerId)") == producers

    # the page was hidden and is visible again (simulated: headless Chromium
    # never hides a page): the teacher is warned
    await teacher.js(
        """(() => {
            const set = (value) => {
                Object.defineProperty(document, 'visibilityState', {value, configurable: true});
                document.dispatchEvent(new Event('visibilitychange'));
            };
            set('hidden');
            set('visible');
        })()"""
    )
    await teacher.wait("sidecoach.deviceWarning === 'hidden'")
    assert "background" in await teacher.page.inner_text("#device-warning")
    assert page_errors(teacher, coach) == []
