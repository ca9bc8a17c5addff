"""A debrief room with three members in Chromium against the real server:
everyone sees and hears everyone, and every member's player follows the
driver through play, seek, pause and rate; driving is handed over with one
click; a comment lands on the others' timelines at once."""

from __future__ import annotations

import aiohttp
import pytest

from testkit.browser import Opener, Tab, page_errors
from testkit.server import LiveServer
from tests.test_recording_access import record_a_lesson

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1366, "height": 900}
TABLET = {"width": 820, "height": 1180}
#: members' players agree within this (s) once they have followed a command
IN_STEP_S = 0.25


async def start_debrief(server: LiveServer, teacher_token: str) -> tuple[str, dict[str, str]]:
    headers = {"Authorization": f"Bearer {teacher_token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{server.url}/api/recordings") as r:
            (rec,) = (await r.json())["recordings"]
        async with http.post(
            f"{server.url}/api/recordings/{rec['id']}/debriefs", json={"members": ["Ana", "Ben"]}
        ) as r:
            made = await r.json()
    # the links carry the configured public URL; the test server's port is its own
    links = {m["name"]: "/join?" + m["url"].split("?", 1)[1] for m in made["members"]}
    links["Ms. Rivera"] = "/join?" + made["owner"]["url"].split("?", 1)[1]
    return str(rec["id"]), links


async def in_step(tabs: list[Tab], what: str) -> None:
    """Every player near where the room is now (each measures its own drift)."""
    for tab in tabs:
        await tab.wait(f"Math.abs(sidecoach.drift) < {IN_STEP_S}", timeout=20)
    # sampled one tab after the other (slowly on a loaded machine): each
    # position is taken back to the first sample's instant at the room's rate
    samples = [
        await t.js(
            "[sidecoach.currentTime, Date.now(),"
            " sidecoach.playback.moving ? sidecoach.playback.rate : 0]"
        )
        for t in tabs
    ]
    t0 = samples[0][1]
    times = [pos - (at - t0) / 1000 * rate for pos, at, rate in samples]
    assert max(times) - min(times) < 2 * IN_STEP_S + 0.5, (what, samples)


@pytest.mark.slow
async def test_three_members_follow_the_driver(live_server: LiveServer, open_tab: Opener) -> None:
    _, tokens = await record_a_lesson(live_server, before_s=3, after_s=14)
    rid, links = await start_debrief(live_server, tokens["teacher"])
    tabs = []
    for name, size in (("Ms. Rivera", LAPTOP), ("Ana", LAPTOP), ("Ben", TABLET)):
        tab = await open_tab(links[name], f"debrief-{name.split()[-1].lower()}", viewport=size)
        await tab.wait(
            "document.querySelector('#join') && !document.querySelector('#join').disabled"
        )
        await tab.page.click("#join")
        await tab.wait("sidecoach.joined")
        tabs.append(tab)
    owner, ana, ben = tabs
    # everyone sees and hears everyone: two cameras and two mics each
    for tab in tabs:
        await tab.wait(
            "sidecoach.remoteTracks.filter(t => t.kind === 'video').length === 2"
            " && sidecoach.remoteTracks.filter(t => t.kind === 'audio').length === 2",
            timeout=30,
        )
        await tab.wait(
            "[...document.querySelectorAll('#members video')].every(v => v.videoWidth > 0)"
        )
    for tab in tabs:
        await tab.wait("document.querySelector('#player').readyState >= 2")

    # the owner drives: play from 1 s
    await owner.page.click("#take-wheel")
    await owner.wait("sidecoach.driver === sidecoach.participantId")
    await owner.page.click("#play")
    for tab in tabs:
        await tab.wait("sidecoach.playback.moving && !sidecoach.paused")
    await in_step(tabs, "play")
    # a member who is not driving cannot pause the room
    await ana.page.click("#play")
    await ana.wait("!sidecoach.paused")
    # seek: a click on the timeline's cue marker
    cue_t = (await owner.js("sidecoach.playback")) and await owner.page.get_attribute(
        ".mark-cue", "data-t"
    )
    await owner.page.click(".mark-cue")
    for tab in tabs:
        await tab.wait("Math.abs(sidecoach.playback.position - arg / 1000) < 1.5", arg=float(cue_t))
    await in_step(tabs, "seek")
    # rate
    await owner.page.select_option("#rate", "1.5")
    for tab in tabs:
        await tab.wait(
            "sidecoach.playback.rate === 1.5 && Math.abs(sidecoach.playbackRate - 1.5) < 0.2"
        )
    await in_step(tabs, "rate")
    await owner.screenshot("debrief-laptop")
    await ben.screenshot("debrief-tablet")
    # one click hands the wheel to Ben, who pauses for everyone
    await ben.page.click("#take-wheel")
    await ben.wait("sidecoach.driver === sidecoach.participantId")
    await ben.page.click("#play")
    for tab in tabs:
        await tab.wait("!sidecoach.playback.moving && sidecoach.paused")
    await in_step(tabs, "pause")
    # a comment in the debrief lands on everyone's timeline
    await ana.page.fill("#comment-text", "Look at the wait time here")
    await ana.page.click("#comment-form button[type=submit]")
    for tab in (owner, ben):
        await tab.wait("sidecoach.comments.some(c => c.text === 'Look at the wait time here')")
        await tab.wait("document.querySelectorAll('.mark-comment').length === 1")
    assert page_errors(*tabs) == []
