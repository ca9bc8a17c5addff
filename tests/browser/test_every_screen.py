"""Every page on a phone (390x844), a tablet (820x1180) and a laptop
(1366x768), at every step of a lesson (the coach's and observer's join
screens, before live, live, paused, stopped,
ended) and after it (the ended page, review, debrief, the lessons library,
the lobby, the check, an error page): nothing is wider than the screen
(`document.documentElement.scrollWidth <= innerWidth`), words on cue cards
never break in the middle, and after the end only the summary and the
review link remain. Screenshots of each are kept in test-artifacts/."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from server.core.tokens import issue_admin_token
from testkit.browser import Opener, Tab, page_errors
from testkit.server import TEST_SECRET, LiveServer

pytestmark = pytest.mark.browser

SIZES = {
    "phone": {"width": 390, "height": 844},
    "tablet": {"width": 820, "height": 1180},
    "laptop": {"width": 1366, "height": 768},
}
NEXT_FRAME = "new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(1))))"
#: what pokes out past the right edge (for the failure message)
WIDER = """() => [...document.querySelectorAll('body *')]
  .filter((e) => { const r = e.getBoundingClientRect(); return r.width && r.right > innerWidth; })
  .slice(0, 6)
  .map((e) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}`
    + `${typeof e.className === 'string' && e.className ? '.' + e.className.trim() : ''}`
    + ` right=${Math.round(e.getBoundingClientRect().right)}`)"""
#: words of the cue cards that a line break cuts in two
BROKEN_WORDS = """() => {
  const broken = [];
  for (const el of document.querySelectorAll('.cue-text')) {
    const text = el.firstChild;
    if (!text) continue;
    let i = 0;
    for (const word of text.textContent.split(' ')) {
      const range = document.createRange();
      range.setStart(text, i);
      range.setEnd(text, i + word.length);
      const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
      if (lines.size > 1) broken.push(word);
      i += word.length + 1;
    }
  }
  return broken;
}"""


class Screens:
    """Each page at each size: what overflowed, and every screenshot taken."""

    def __init__(self) -> None:
        self.overflows: dict[str, Any] = {}
        self.checked: list[str] = []

    async def fit(self, tab: Tab, step: str) -> None:
        for size, viewport in SIZES.items():
            await tab.page.set_viewport_size(viewport)
            await tab.js(NEXT_FRAME)
            scroll, inner = await tab.js("[document.documentElement.scrollWidth, innerWidth]")
            label = f"{tab.name}-{step}-{size}"
            await tab.screenshot(f"screens-{label}")
            self.checked.append(label)
            if scroll > inner:
                self.overflows[label] = (scroll, inner, await tab.page.evaluate(WIDER))

    def report(self) -> str:
        return f"{len(self.checked)} page/step/size checked; overflowing: {self.overflows}"


async def lesson_pages(
    server: LiveServer, open_tab: Opener, screens: Screens
) -> tuple[str, dict[str, Tab]]:
    """The three lesson pages, joined; the coach's and observer's join
    screens fitted first (the teacher already here)."""
    session = await server.create_session(
        "Fractions and decimals, period 3: a rather long title for a phone"
    )
    tabs = {}
    for role, name in (("teacher", None), ("coach", "Dr Chen-Okafor"), ("observer", "Visitor")):
        token = server.invite(session.id, role, **({"name": name} if name else {}))
        tabs[role] = await open_tab(
            f"/join?token={token}", role, viewport=SIZES["laptop"], join_screen=role != "teacher"
        )
        if role == "teacher":
            await tabs[role].wait("window.sidecoach && sidecoach.state === 'joined'", timeout=30)
            continue
        await tabs[role].wait("document.querySelector('#join-here').textContent.includes('now')")
        if role == "coach":
            await tabs[role].wait("document.querySelector('#join-mic-select').options.length > 0")
        await screens.fit(tabs[role], "join")
        await tabs[role].page.click("#join")
    for tab in tabs.values():
        await tab.wait("window.sidecoach && sidecoach.state === 'joined'", timeout=30)
    return session.id, tabs


async def test_the_lesson_pages_fit_every_screen_before_going_live(
    live_server: LiveServer, open_tab: Opener
) -> None:
    screens = Screens()
    _, tabs = await lesson_pages(live_server, open_tab, screens)
    for tab in tabs.values():
        await screens.fit(tab, "before-live")
    assert not screens.overflows, screens.report()
    # the notes' "Who sees it" select no longer widens the coach's column
    assert await tabs["coach"].js("document.querySelector('#note-visibility').options.length") == 3
    assert page_errors(*tabs.values()) == []


@pytest.mark.slow
async def test_every_page_fits_every_screen_at_every_step(
    live_server: LiveServer, open_tab: Opener
) -> None:
    screens = Screens()
    session_id, tabs = await lesson_pages(live_server, open_tab, screens)
    teacher, coach, observer = tabs["teacher"], tabs["coach"], tabs["observer"]

    async def step(name: str) -> None:
        for tab in tabs.values():
            await screens.fit(tab, name)

    await step("before-live")
    await teacher.page.click("#go-live")
    await teacher.wait("document.body.dataset.phase === 'live'", timeout=40)
    for viewer in (coach, observer):
        await viewer.wait("document.body.dataset.phase === 'live'", timeout=40)
    for text in ("Praise specific behaviour", "Counterproductive interruptions"):
        await coach.page.fill("#cue-text", text)
        await coach.page.click("#cue-form button[type=submit]")
    await teacher.wait("document.querySelectorAll('.cue-card').length === 2")
    await teacher.page.set_viewport_size(SIZES["phone"])
    await teacher.js(NEXT_FRAME)
    assert await teacher.page.evaluate(BROKEN_WORDS) == []
    await step("live")

    await teacher.page.click("#pause-recording")
    await teacher.wait("document.body.dataset.phase === 'paused'")
    await coach.wait("document.body.dataset.phase === 'paused'")
    assert await teacher.page.inner_text(".recording-state") == "Recording paused"
    await step("paused")

    await teacher.page.click("#pause-recording")
    await teacher.wait("document.body.dataset.phase === 'live'")
    await teacher.page.click("#stop")
    await teacher.page.click("#confirm-yes")
    await teacher.wait("document.body.dataset.phase === 'stopped'")
    await coach.wait("document.body.dataset.phase === 'stopped'")
    lines = {line.strip() for line in (await teacher.page.inner_text("body")).splitlines()}
    # the issue saw "Not live" and "● Recording" together here
    assert "Not live" in lines and "Recording" not in lines, lines
    assert await teacher.page.inner_text(".recording-state") == "Recording stopped"
    await step("stopped")

    await teacher.page.click("#end-lesson")
    await teacher.page.click("#confirm-yes")
    for tab in tabs.values():
        await tab.wait("document.body.dataset.phase === 'ended'")
    await coach.wait("document.querySelector('.after .review-link')", timeout=30)
    # after the end: the summary and the review link, no live controls or words
    text = await coach.page.inner_text("body")
    assert "Connecting your microphone" not in text and "appears here when" not in text, text
    assert "You sent 2 cues" in await coach.page.inner_text("#lesson-summary")
    enabled = await coach.js(
        "[...document.querySelectorAll('button:not([disabled])')]"
        ".filter((b) => b.offsetParent !== null).map((b) => b.textContent.trim())"
    )
    assert not {"Send cue", "Hold to whisper", "Undo last tally"} & set(enabled), enabled
    await teacher.wait("document.querySelectorAll('.recording-card').length === 1", timeout=30)
    await step("ended")

    await other_pages(live_server, open_tab, session_id, screens)
    assert not screens.overflows, screens.report()
    print(f"\n{screens.report()}")
    assert page_errors(teacher, coach, observer) == []


async def other_pages(
    server: LiveServer, open_tab: Opener, session_id: str, screens: Screens
) -> None:
    """The pages around a lesson, each at the three sizes."""
    teacher_token = server.invite(session_id, "teacher")
    ended = await open_tab(f"/join?token={teacher_token}", "ended")
    await ended.wait("sidecoach.loaded")
    await screens.fit(ended, "after")
    headers = {"Authorization": f"Bearer {teacher_token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{server.url}/api/recordings") as r:
            (rec,) = (await r.json())["recordings"]
        async with http.post(
            f"{server.url}/api/recordings/{rec['id']}/debriefs", json={"members": ["Ana"]}
        ) as r:
            made = await r.json()
    review = await open_tab(f"/review/{rec['id']}?token={teacher_token}", "review")
    await review.wait("sidecoach.loaded")
    await review.wait("document.querySelector('#player').readyState >= 1")
    await screens.fit(review, "after")
    debrief = await open_tab("/join?" + made["owner"]["url"].split("?", 1)[1], "debrief")
    await debrief.wait("!document.querySelector('#join').disabled")
    await screens.fit(debrief, "lobby")
    await debrief.page.click("#join")
    await debrief.wait("sidecoach.joined")
    await screens.fit(debrief, "room")
    lessons = await open_tab(f"/lessons?token={teacher_token}", "lessons")
    await lessons.wait("sidecoach.loaded")
    await screens.fit(lessons, "after")
    admin = issue_admin_token(TEST_SECRET, ttl_s=600)
    await server.create_session("Reading groups, period 5")
    lobby = await open_tab(f"/?admin={admin}", "lobby")
    await lobby.wait("sidecoach.sessions.length >= 1")
    await lobby.page.fill("#title", "A new lesson with a long title for the phone")
    await lobby.page.fill("#teacher-name", "Ms. Rivera-Okonkwo")
    await lobby.page.click("#create-form button[type=submit]")
    await lobby.wait("sidecoach.invites !== null")
    await screens.fit(lobby, "invites")
    check = await open_tab("/check", "check")
    await check.wait("sidecoach.done", timeout=60)
    await screens.fit(check, "report")
    error = await open_tab("/join?token=not-a-token", "error")
    await screens.fit(error, "page")
