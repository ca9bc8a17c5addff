"""The teacher page's link is cut (testkit/netns.py), and the coach page sees
the classroom again by itself, with no duplicate teacher:

* 5 s: nothing is torn down (ICE consent holds on both sides), the server
  asks the teacher for a keyframe as soon as its media resumes, and the
  page never rejoins;
* 14 s: Chromium calls the media connection "disconnected" ~7 s into the
  cut; conn.js rejoins 5 s later (aiortc cannot restart ICE), keeps trying
  while the link is down, and the server's seats replace the old teacher.

The teacher's Chromium runs in its own namespace (the wrapper of
testkit/netns.py), the coach's in this one. How long each recovery takes is
printed by scripts/bench_network.py, not asserted here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from testkit.browser import (
    CHROMIUM,
    Tab,
    launched_chromium,
    new_tab,
    page_errors,
    teacher_gone_live,
)
from testkit.netns import Link, Netlab
from testkit.server import LiveServer, make_config, running_server

pytestmark = pytest.mark.browser

#: counts every video frame a page presents, on any remote video element
#: (a rejoin replaces the element), test-only
COUNT_FRAMES = """(() => {
    window.__framesShown = 0;
    const hook = (v) => {
        if (v.__counted) return;
        v.__counted = true;
        const tick = () => { window.__framesShown++; v.requestVideoFrameCallback(tick); };
        v.requestVideoFrameCallback(tick);
    };
    new MutationObserver(() => document.querySelectorAll("video.remote-video").forEach(hook))
        .observe(document, {childList: true, subtree: true});
})();"""


async def frames_shown(tab: Tab) -> int:
    return int(await tab.page.evaluate("() => window.__framesShown"))


@pytest.mark.slow
async def test_the_coach_page_sees_the_classroom_again_after_the_teacher_link_is_cut(
    netlab: Netlab, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    classroom = netlab.namespace("classroom")
    link = netlab.link(None, classroom, subnet=8)
    config = make_config(tmp_path, host=link.a_ip, ice_listen_ips=(link.a_ip,))
    async with running_server(config) as server:
        session = await server.create_session(recording=False)
        origin = server.url  # a secure context only by this flag
        flags = [f"--unsafely-treat-insecure-origin-as-secure={origin}"]
        async with (
            launched_chromium(classroom.wrapper(str(CHROMIUM), tmp_path), flags) as in_class,
            launched_chromium(CHROMIUM, flags) as at_home,
        ):
            teacher = await teacher_gone_live(
                in_class, origin, server.invite(session.id, "teacher")
            )
            coach = await new_tab(
                at_home, f"{origin}/join?token={server.invite(session.id, 'coach')}", "coach",
                init=COUNT_FRAMES,
            )  # fmt: skip
            await coach.wait("window.__framesShown > 30", timeout=40)

            await cut_and_see_it_again(link, 5.0, coach, server, session.id)
            assert await teacher.js("sidecoach.joins") == 1  # nothing was torn down

            await cut_and_see_it_again(link, 14.0, coach, server, session.id)
            assert await teacher.js("sidecoach.joins") == 2  # a rejoin replaced the old seat
            await teacher.wait("sidecoach.live === 'live'", timeout=20)
            await coach.screenshot("coach-after-teacher-link-cut")
            assert page_errors(teacher, coach) == []


async def cut_and_see_it_again(
    link: Link, seconds: float, coach: Tab, server: LiveServer, session_id: str
) -> None:
    link.cut()
    await asyncio.sleep(seconds)
    link.restore()
    shown = await frames_shown(coach)
    await coach.wait("window.__framesShown > arg + 30", timeout=40, arg=shown)
    live = server.manager.get(session_id)
    assert live is not None
    teachers = [p for p in live.participants.values() if str(p.role) == "teacher"]
    assert len(teachers) == 1, teachers
    assert await coach.js("sidecoach.state") == "joined"
