"""The review page and the lessons library in Chromium against the real
server: the video plays and seeks to a cue's marker, the whisper toggle is
there only for roles that may hear whispers, comments make the round trip
between two pages and survive a restart, the WebVTT export loads into a
<track>, the CSV has a row per tally; screenshots at laptop and tablet sizes."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import aiohttp
import pytest

from server.core.tokens import issue_admin_token
from testkit.browser import Opener, new_tab, page_errors
from testkit.server import TEST_SECRET, LiveServer, make_config, running_server
from tests.test_recording_access import record_a_lesson

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1366, "height": 900}
TABLET = {"width": 820, "height": 1180}


async def recording_of(server: LiveServer, token: str) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}/api/recordings", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        (rec,) = (await r.json())["recordings"]
        return str(rec["id"])


@pytest.mark.slow
async def test_the_review_page_plays_seeks_and_shows_each_role_its_lesson(
    live_server: LiveServer, open_tab: Opener
) -> None:
    _, tokens = await record_a_lesson(live_server, before_s=4, after_s=8)
    rid = await recording_of(live_server, tokens["teacher"])
    teacher = await open_tab(
        f"/review/{rid}?token={tokens['teacher']}", "review-teacher", viewport=LAPTOP
    )
    await teacher.wait("sidecoach.loaded")
    await teacher.wait("document.querySelector('#player').readyState >= 1")
    # it plays
    await teacher.page.click("#play")
    await teacher.wait("!sidecoach.paused && sidecoach.nowMs > 0")
    await teacher.page.click("#play")
    # a click on the cue's marker puts the video at the cue
    cue_t = (await teacher.js("sidecoach.timeline")).get("cues")[0]["t"]
    await teacher.page.click(".mark-cue")
    await teacher.wait("Math.abs(sidecoach.nowMs - arg) <= 100", arg=cue_t)
    # keyboard: right arrow is 5 s on
    await teacher.page.focus("body")
    before = await teacher.js("sidecoach.nowMs")
    await teacher.page.keyboard.press("ArrowRight")
    await teacher.wait("sidecoach.nowMs > arg + 1000", arg=before)
    # the teacher may hear the whispers, mixed in
    assert await teacher.js("sidecoach.whisperToggle")
    whisper_t = (await teacher.js("sidecoach.timeline"))["whispers"][0]["start"]
    await teacher.page.check("#whisper-toggle")
    await teacher.page.click(".span-whisper")
    await teacher.wait("Math.abs(sidecoach.nowMs - arg) <= 100", arg=whisper_t)
    await teacher.page.click("#play")
    await teacher.wait("sidecoach.whispersPlaying === 1")
    await teacher.page.click("#play")
    # the WebVTT track: one cue, one whisper, no comments yet
    await teacher.wait("sidecoach.trackCues === 2")
    await teacher.screenshot("review-laptop", full_page=True)

    observer = await open_tab(
        f"/review/{rid}?token={tokens['observer']}", "review-observer", viewport=TABLET
    )
    await observer.wait("sidecoach.loaded")
    assert not await observer.js("sidecoach.whisperToggle")
    assert await observer.page.locator(".mark-cue").count() == 0
    assert not await observer.page.is_visible("#comment-form")
    await observer.screenshot("review-tablet-observer", full_page=True)

    # the CSV export: a row per tally
    csv_href = await teacher.page.get_attribute("#exports a[download='tallies.csv']", "href")
    async with aiohttp.ClientSession() as http, http.get(live_server.url + csv_href) as r:
        rows = list(csv.DictReader(io.StringIO(await r.text())))
    assert len(rows) == len((await teacher.js("sidecoach.timeline"))["tallies"]) == 1
    assert page_errors(teacher, observer) == []


@pytest.mark.slow
async def test_comments_make_the_round_trip_and_survive_a_restart(
    tmp_path: Path, browser: object
) -> None:
    config = make_config(tmp_path)
    async with running_server(config) as server:
        _, tokens = await record_a_lesson(server)
        rid = await recording_of(server, tokens["teacher"])
        coach = await new_tab(
            browser, f"{server.url}/review/{rid}?token={tokens['coach_a']}", "coach"
        )
        teacher = await new_tab(
            browser, f"{server.url}/review/{rid}?token={tokens['teacher']}", "teacher"
        )
        try:
            await coach.wait("sidecoach.loaded")
            await coach.page.fill("#comment-text", "Great wait time here")
            await coach.page.select_option("#comment-tag", "BSP")
            await coach.page.click("#comment-form button[type=submit]")
            await coach.wait("sidecoach.comments.length === 1")
            await teacher.wait("sidecoach.loaded")
            await teacher.page.reload()
            await teacher.wait("sidecoach.loaded && sidecoach.comments.length === 1")
            await teacher.page.click("li.comment button.reply")
            await teacher.page.fill("#comment-text", "I counted to five")
            await teacher.page.click("#comment-form button[type=submit]")
            await teacher.wait("sidecoach.comments.length === 2")
            await teacher.screenshot("review-comments")
        finally:
            await coach.page.context.close()
            await teacher.page.context.close()
    async with running_server(config) as server:
        coach = await new_tab(
            browser, f"{server.url}/review/{rid}?token={tokens['coach_a']}", "coach"
        )
        try:
            await coach.wait("sidecoach.loaded")
            texts = await coach.js("sidecoach.comments.map(c => c.text).sort()")
            assert texts == ["Great wait time here", "I counted to five"]
            replies = await coach.page.locator("li.comment-reply").count()
            assert replies == 1
            assert "BSP" in await coach.page.inner_text("#comments")
            assert coach.errors == []
        finally:
            await coach.page.context.close()


@pytest.mark.slow
async def test_the_lessons_library_lists_past_lessons(
    live_server: LiveServer, open_tab: Opener
) -> None:
    await record_a_lesson(live_server)
    admin = issue_admin_token(TEST_SECRET, ttl_s=600)
    lobby = await open_tab(f"/?admin={admin}", "lobby")
    await lobby.wait("window.sidecoach && sidecoach.signedIn")
    await lobby.page.click("a[href='/lessons']")
    await lobby.wait("window.sidecoach && sidecoach.loaded")
    lessons = await lobby.js("sidecoach.lessons")
    assert len(lessons) == 1 and lessons[0]["coaches"] == ["Dr Chen", "Mr Okafor"]
    await lobby.wait("document.querySelector('.lesson-thumb').naturalWidth > 0")
    await lobby.screenshot("lessons-laptop")
    await lobby.page.set_viewport_size(TABLET)
    await lobby.screenshot("lessons-tablet")
    await lobby.page.click(".review-link")
    await lobby.wait("window.sidecoach && sidecoach.loaded")
    assert "Fractions" in await lobby.page.inner_text("#lesson-title")
    assert page_errors(lobby) == []


@pytest.mark.slow
async def test_an_h264_lesson_plays_on_the_review_page(
    live_server: LiveServer, open_tab: Opener
) -> None:
    """H.264 is remuxed (never transcoded) into MP4, which Chromium plays."""
    from testkit.peers import PatternVideoTrack, ToneTrack, wait_for

    session = await live_server.create_session()
    teacher = live_server.participant(session.id, "teacher")
    coach = live_server.participant(session.id, "coach")
    try:
        await teacher.join()
        await teacher.publish(PatternVideoTrack(), "camera", codec="H264")
        await teacher.publish(ToneTrack(), "mic")
        await coach.join()
        await wait_for(lambda: len(coach.received) == 2)
        await wait_for(lambda: coach.tracks(source="camera")[0].frames > 90, timeout=30)
        await live_server.manager.end_session(session.id)
    finally:
        await teacher.close()
        await coach.close()
    token = live_server.invite(session.id, "teacher")
    rid = await recording_of(live_server, token)
    tab = await open_tab(f"/review/{rid}?token={token}", "review-h264")
    await tab.wait("sidecoach.loaded")
    view = await tab.js("sidecoach.view")
    assert view["review"]["classroom"].endswith(".mp4")
    assert [t["codec"] for t in view["tracks"] if t["source"] == "camera"] == ["video/H264"]
    await tab.page.click("#play")
    await tab.wait("document.querySelector('#player').videoWidth === 320 && !sidecoach.paused")
    start = await tab.js("sidecoach.nowMs")
    await tab.wait("sidecoach.nowMs > arg + 500", arg=start)
    assert page_errors(tab) == []
