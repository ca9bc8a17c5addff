"""Browser pages around the live lesson: shared tallies, recording pause,
automatic reconnect, the lobby, and the invite error page."""

from __future__ import annotations

import re

import aiohttp
import pytest

from server.core.roles import Role
from server.core.tokens import issue_admin_token, issue_invite
from testkit.browser import Opener, Tab, page_errors
from testkit.server import TEST_SECRET, LiveServer

pytestmark = pytest.mark.browser


def join_path(server: LiveServer, session_id: str, role: str, **kw: object) -> str:
    return "/join?token=" + server.invite(session_id, role, **kw)


@pytest.mark.slow
async def test_tallies_from_two_coaches_add_up_on_both(
    live_server: LiveServer, open_tab: Opener
) -> None:
    session = await live_server.create_session()
    a = await open_tab(join_path(live_server, session.id, "coach", name="Ana"), "coach-a")
    b = await open_tab(join_path(live_server, session.id, "coach", name="Ben"), "coach-b")
    for tab in (a, b):
        await tab.wait("sidecoach.state === 'joined' && sidecoach.participants.length === 2")
    otr = "button.tally-button[data-category=OTR]"
    for _ in range(3):
        await a.page.click(otr)
    for _ in range(2):
        await b.page.click(otr)
    await b.page.click("button.tally-button[data-category=BSP]")
    for tab in (a, b):
        await tab.wait("sidecoach.counts.OTR === 5 && sidecoach.counts.BSP === 1")
    await b.page.click("#tally-undo")
    for tab in (a, b):
        await tab.wait("sidecoach.counts.OTR === 5 && sidecoach.counts.BSP === 0")
        assert await tab.page.inner_text(f"{otr} .tally-count") == "5"
    await a.wait("sidecoach.lastTally?.undo === true")
    assert "Undid BSP (Ben" in await a.page.inner_text("#tally-last")
    # keyboard: digit 1 is the first category
    await a.page.focus("body")
    await a.page.keyboard.press("Digit1")
    await b.wait("sidecoach.counts.OTR === 6")
    # a private note stays with its author; shared with the team, it reaches the other coach
    await a.page.fill("#note-text", "Only for me")
    await a.page.click("#note-form button[type=submit]")
    await a.wait("sidecoach.notes.some(n => n.text === 'Only for me')")
    await a.page.fill("#note-text", "Great wait time after the fractions question")
    await a.page.select_option("#note-visibility", "team")
    await a.page.click("#note-form button[type=submit]")
    await b.wait("sidecoach.notes.some(n => n.text.startsWith('Great wait time'))")
    assert not await b.js("sidecoach.notes.some(n => n.text === 'Only for me')")
    await a.page.click("li.note[data-visibility=private] button.share-note")
    await b.wait("sidecoach.notes.some(n => n.text === 'Only for me')")
    assert page_errors(a, b) == []


async def live_teacher_and_coach(server: LiveServer, open_tab: Opener) -> tuple[str, Tab, Tab]:
    """A new session (its id) with a teacher page gone live and a coach page open."""
    session = await server.create_session()
    teacher = await open_tab(join_path(server, session.id, "teacher"), "teacher")
    coach = await open_tab(join_path(server, session.id, "coach"), "coach")
    await teacher.wait("sidecoach.state === 'joined'")
    await teacher.page.click("#go-live")
    await teacher.wait("sidecoach.live === 'live'")
    return session.id, teacher, coach


@pytest.mark.slow
async def test_teacher_pauses_recording_and_both_pages_show_it(
    live_server: LiveServer, open_tab: Opener
) -> None:
    _, teacher, coach = await live_teacher_and_coach(live_server, open_tab)
    for tab in (teacher, coach):
        await tab.wait("sidecoach.recording === 'recording'")
    await teacher.page.click("#pause-recording")
    for tab in (teacher, coach):
        await tab.wait("sidecoach.recording === 'paused'")
        assert "paused" in (await tab.page.inner_text(".recording-state")).lower()
    await teacher.screenshot("teacher-recording-paused")
    assert await teacher.page.inner_text("#pause-recording") == "Resume recording"
    await teacher.page.click("#pause-recording")
    for tab in (teacher, coach):
        await tab.wait("sidecoach.recording === 'recording'")
    assert page_errors(teacher, coach) == []


@pytest.mark.slow
async def test_pages_rejoin_on_their_own_after_a_network_drop(
    live_server: LiveServer, open_tab: Opener
) -> None:
    session_id, teacher, coach = await live_teacher_and_coach(live_server, open_tab)
    await coach.wait("document.querySelector('video.remote-video')?.videoWidth > 0")

    # the teacher's socket drops: the page says so, rejoins and republishes
    await teacher.js("sidecoach.socket.io.engine.close()")
    await teacher.wait("sidecoach.joins === 2 && sidecoach.live === 'live'")
    assert await teacher.js("sidecoach.drops") == 1
    await coach.wait(
        "[...document.querySelectorAll('video.remote-video')].some(v => v.videoWidth > 0)"
        " && sidecoach.remoteTracks.filter(t => t.kind === 'video').length === 1"
    )
    assert await coach.video_playing()

    # the coach goes offline for a moment: "Reconnecting…", then back on its own
    await coach.page.context.set_offline(True)
    await coach.js("sidecoach.socket?.io.engine.close()")  # offline may have closed it
    await coach.wait("sidecoach.state === 'reconnecting'")
    assert "Reconnecting" in await coach.page.inner_text("#conn-state")
    await coach.screenshot("coach-reconnecting")
    await coach.page.context.set_offline(False)
    await coach.wait("sidecoach.state === 'joined' && sidecoach.joins >= 2", timeout=20)
    await coach.wait("sidecoach.remoteTracks.some(t => t.kind === 'video')")
    await coach.wait("document.querySelector('video.remote-video')?.videoWidth > 0")
    assert await coach.video_playing()
    live = live_server.manager.get(session_id)
    assert live is not None
    roles = sorted(str(p.role) for p in live.participants.values())
    assert roles == ["coach", "teacher"]
    assert page_errors(teacher, coach) == []


async def test_lobby_creates_a_session_and_ends_it(
    live_server: LiveServer, open_tab: Opener
) -> None:
    admin = issue_admin_token(TEST_SECRET, ttl_s=600)
    lobby = await open_tab(f"/?admin={admin}", "lobby")
    await lobby.wait("window.sidecoach && sidecoach.signedIn")
    assert "admin=" not in lobby.page.url  # the token left the address bar
    await lobby.page.fill("#title", "Reading <b>groups</b>")
    await lobby.page.fill("#teacher-name", "Mr. Okafor")
    await lobby.page.uncheck("#recording")
    await lobby.page.fill("#prompts", "Wait time\nPraise effort\n")
    await lobby.page.fill("#tallies", "OTR\nBSP")
    await lobby.page.fill("#coach-names", "Dr Chen\nMs Ito")
    await lobby.page.click("#create-form button[type=submit]")
    await lobby.wait("sidecoach.invites && sidecoach.invites.teacher")
    invites = await lobby.js("sidecoach.invites")
    # one link per named coach (the teacher sees who whispers), and the observer's
    assert set(invites) == {"teacher", "coach:Dr Chen", "coach:Ms Ito", "observer"}
    invites["coach"] = invites["coach:Dr Chen"]
    assert await lobby.page.locator("#qr svg path").count() == 1
    created = await lobby.js("sidecoach.created")
    record = await live_server.store.get(created["id"])
    assert record.title == "Reading <b>groups</b>" and not record.settings.recording
    assert record.settings.prompts == ("Wait time", "Praise effort")

    # the invite opens the coach page with the session's own prompts
    assert invites["coach"].startswith(live_server.url + "/join?token=")
    coach = await open_tab(invites["coach"], "coach")
    await coach.wait("sidecoach.state === 'joined'")
    assert "Dr Chen" in await coach.page.inner_text("#people")
    assert await coach.page.locator("button.prompt-button").all_inner_texts() == [
        "Wait time",
        "Praise effort",
    ]
    assert await coach.js("sidecoach.recording") == "off"
    # the title is text, never markup
    assert await coach.page.locator(".session-title b").count() == 0

    await lobby.page.click("#refresh")
    item = lobby.page.locator(f".session-item[data-session-id='{created['id']}']")
    second = await open_tab(invites["coach:Ms Ito"], "coach-2")
    await second.wait("sidecoach.state === 'joined'")
    await lobby.wait(
        "sidecoach.sessions.some(s => s.id === arg && s.state === 'live')", arg=created["id"]
    )
    await lobby.page.click("#refresh")
    await lobby.wait(
        "document.querySelector(`.session-item[data-session-id='${arg}']`)"
        ".textContent.includes('2 coaches')",
        arg=created["id"],
    )
    await lobby.screenshot("lobby", full_page=True)
    lobby.page.once("dialog", lambda d: d.accept())
    await item.locator("button:has-text('End')").click()
    await lobby.wait("!sidecoach.sessions.some(s => s.id === arg)", arg=created["id"])
    await coach.wait("sidecoach.state === 'ended'")
    assert await coach.page.is_visible("#ended-banner")
    assert page_errors(lobby, coach, second) == []


async def test_bad_invites_get_a_friendly_error_page(
    live_server: LiveServer, open_tab: Opener
) -> None:
    session = await live_server.create_session()
    expired = issue_invite(TEST_SECRET, session.id, Role.COACH, ttl_s=1, now=1_000_000)
    forged = live_server.invite(session.id, "teacher")[:-4] + "AAAA"
    async with aiohttp.ClientSession() as http:
        for token, status in ((expired, 401), (forged, 403), ("", 401)):
            async with http.get(f"{live_server.url}/join", params={"token": token}) as res:
                assert res.status == status
                body = await res.text()
                assert "sidecoach-page" not in body and "/static/js/" not in body
    tab = await open_tab(f"/join?token={expired}", "error")
    assert "expired" in (await tab.page.inner_text("h1")).lower()
    assert re.search(r"new link", await tab.page.inner_text("main"))
    await tab.screenshot("error-page")
    # the only console error is the page's own 401 status
    assert [e for e in page_errors(tab) if "status of 401" not in e] == []
