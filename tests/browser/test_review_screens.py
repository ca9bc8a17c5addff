"""Review on the lesson's clock and on any screen, in Chromium: 0:00 is Go
live (the time before it is collapsed, and opens with one tap), the player,
the comment time, the timeline and the chart agree; on a 390 px touch phone
there is one set of controls, marks are large enough to tap and those close
together are grouped, no keyboard hint shows and lane names leave the lanes
the width; the chart follows the window; in a debrief at 1280x800 the
members' cameras are beside the video."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from testkit.browser import Opener, page_errors
from testkit.peers import PatternVideoTrack, ToneTrack, wait_for
from testkit.server import LiveServer

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
#: the time between the first join and Go live
PRELIVE_S = 2.5


async def lesson_with_time_before_going_live(server: LiveServer) -> tuple[str, str]:
    """A lesson whose coach tallies before the teacher goes live, then three
    taps within a second and a cue; ended. Returns (recording id, teacher token)."""
    session = await server.create_session()
    teacher = server.participant(session.id, "teacher")
    coach = server.participant(session.id, "coach")
    try:
        await teacher.join()
        await coach.join("Dr Chen")
        assert (await coach.call("tally", {"category": "BSP"}))["ok"]  # before Go live
        assert (await coach.call("note", {"text": "settling in", "visibility": "team"}))["ok"]
        await asyncio.sleep(PRELIVE_S)  # the minutes before Go live, shortened
        await teacher.publish(PatternVideoTrack(), "camera")
        await teacher.publish(ToneTrack(440), "mic")
        await wait_for(lambda: len(coach.received) == 2)
        await wait_for(lambda: coach.tracks(source="camera")[0].frames > 30, timeout=15)
        for _ in range(3):  # close together: one group on a phone
            assert (await coach.call("tally", {"category": "BSP"}))["ok"]
        assert (await coach.call("cue", {"text": "Wait time"}))["ok"]
        await asyncio.sleep(3)
        assert (await coach.call("tally", {"category": "OTR"}))["ok"]
        await asyncio.sleep(1)
        await server.manager.end_session(session.id)
    finally:
        await teacher.close()
        await coach.close()
    token = server.invite(session.id, "teacher")
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for _ in range(100):  # bounded: the recording is finalized in a moment
            async with http.get(f"{server.url}/api/recordings") as r:
                (rec,) = (await r.json())["recordings"]
            if rec["state"] != "recording":
                break
            await asyncio.sleep(0.1)
    return str(rec["id"]), token


@pytest.mark.slow
async def test_review_runs_on_the_lessons_clock_on_a_phone(
    live_server: LiveServer, open_tab: Opener
) -> None:
    rid, token = await lesson_with_time_before_going_live(live_server)
    tab = await open_tab(
        f"/review/{rid}?token={token}", "review-phone", viewport=PHONE, is_mobile=True,
        has_touch=True,
    )
    page = tab.page
    await tab.wait("sidecoach.loaded && document.querySelector('#player').readyState >= 1")
    start = await tab.js("sidecoach.lessonStart")
    tl = await tab.js("sidecoach.timeline")
    assert tl["lesson_start_ms"] == start and tl["first_ms"] < start - 2000, tl
    # 0:00 is Go live: the player starts there and every clock says so
    await tab.wait("Math.abs(sidecoach.nowMs - arg) < 100", arg=start)
    await tab.wait("document.querySelector('#comment-at').textContent === '0:00'")
    assert await page.inner_text("#now") == "0:00"
    assert await page.inner_text(".timeline-scale span:first-child") == "0:00"
    chart = await tab.js("sidecoach.chart")
    assert chart["min"] == 0, chart
    end_s = (int(await tab.js("document.querySelector('#timeline').dataset.end")) - start) / 1000
    assert abs(chart["max"] - end_s) < 0.01, (chart, end_s)  # the chart spans the timeline
    # the minutes before Go live are collapsed, and open with one tap
    toggle = page.locator(".prelive-toggle")
    assert "Before going live" in await toggle.inner_text()
    marks = "[...document.querySelectorAll('.mark')]"
    assert await tab.js(f"{marks}.every(m => +m.dataset.t >= arg)", start)
    await toggle.click()
    await tab.wait("document.querySelector('#timeline').dataset.prelive === 'true'")
    early = page.locator(".lane[data-lane='tally-BSP'] .mark").first
    assert (await early.get_attribute("title") or "").startswith("-0:0")
    await page.locator(".prelive-toggle").click()
    await tab.wait("document.querySelector('#timeline').dataset.prelive === 'false'")

    # one set of controls, no keyboard hint on a touch screen
    assert not await tab.js("document.querySelector('#player').controls")
    assert not await page.is_visible(".keys")
    # marks large enough to tap; the three taps within a second are one mark
    sizes = await tab.js(
        "[...document.querySelectorAll('.mark')].map(m => m.getBoundingClientRect())"
        ".map(r => Math.min(r.width, r.height))"
    )
    assert sizes and min(sizes) >= 32, sizes
    group = page.locator(".lane[data-lane='tally-BSP'] .mark-group")
    assert await group.get_attribute("data-count") == "3"
    # lane names leave the lanes the width of the timeline
    lane, timeline = await tab.js(
        "[document.querySelector('.lane-track').getBoundingClientRect().width,"
        " document.querySelector('#timeline').getBoundingClientRect().width]"
    )
    assert lane >= 0.85 * timeline, (lane, timeline)
    # a tap on the group: the player, the comment time and the mark agree
    await group.tap()
    t = int(await group.get_attribute("data-t") or 0)
    await tab.wait("Math.abs(sidecoach.nowMs - arg) <= 100", arg=t)
    said = (await group.get_attribute("title") or "").split(" · ")[0]
    await tab.wait("document.querySelector('#comment-at').textContent === arg", arg=said)
    assert await page.inner_text("#now") == said
    assert await tab.js("document.documentElement.scrollWidth <= innerWidth")
    await tab.screenshot("review-phone-lesson-clock")

    # the chart follows the window
    await page.set_viewport_size({"width": 1366, "height": 900})
    await tab.wait("sidecoach.chart.width > 600")
    wide = (await tab.js("sidecoach.chart"))["width"]
    await page.set_viewport_size({"width": 820, "height": 1180})
    await tab.wait("sidecoach.chart.width < arg", arg=wide)
    assert await tab.js(
        "sidecoach.chart.width <= document.querySelector('#rates').clientWidth"
    )
    assert page_errors(tab) == []


@pytest.mark.slow
async def test_debrief_members_see_each_other_beside_the_video(
    live_server: LiveServer, open_tab: Opener
) -> None:
    rid, token = await lesson_with_time_before_going_live(live_server)
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{live_server.url}/api/recordings/{rid}/debriefs"
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.post(url, json={"members": ["Ana"]}) as r,
    ):
        made = await r.json()
    tabs = []
    for name, url in (("owner", made["owner"]["url"]), ("ana", made["members"][0]["url"])):
        screen = {"width": 1280, "height": 800}
        tab = await open_tab("/join?" + url.split("?", 1)[1], f"debrief-{name}", viewport=screen)
        await tab.wait("!document.querySelector('#join').disabled")
        await tab.page.click("#join")
        await tab.wait("sidecoach.joined")
        tabs.append(tab)
    owner = tabs[0]
    await owner.wait("document.querySelectorAll('#members video').length >= 1", timeout=30)
    video, member = await owner.js(
        "[document.querySelector('#player').getBoundingClientRect().toJSON(),"
        " document.querySelector('#members video').getBoundingClientRect().toJSON()]"
    )
    # on the first screen, beside the video (not ~1,150 px down the page)
    assert member["bottom"] <= 800 and member["top"] < video["bottom"], (video, member)
    assert member["left"] >= video["right"] - 1, (video, member)
    await owner.screenshot("debrief-members-beside-the-video")
    # the end: only the way back to the recording remains
    owner.page.once("dialog", lambda dialog: dialog.accept())
    await owner.page.click("#end-debrief")
    for tab in tabs:
        await tab.wait("document.body.dataset.phase === 'ended'")
        assert not await tab.page.is_visible("#room") and not await tab.page.is_visible("#side")
        href = await tab.page.get_attribute("#after-debrief .review-link", "href") or ""
        assert href.startswith(f"/review/{rid}?token=")
    assert page_errors(*tabs) == []
