"""A tablet on the school's network opens a plain-HTTP link (not
localhost): browsers give such pages no camera, so each page says what to do
in one sentence, naming the server's https:// address when it knows one,
and Go live stays disabled. Chromium runs in a network namespace and
reaches the server on a veth address (testkit/netns.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.browser import CHROMIUM, launched_chromium, new_tab, page_errors
from testkit.netns import Netlab
from testkit.server import make_config, running_server

pytestmark = pytest.mark.browser

INSECURE = "cameras only work on secure pages"


@pytest.mark.slow
async def test_a_plain_http_page_on_the_lan_says_how_to_open_it_securely(
    netlab: Netlab, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium")
    tablet = netlab.namespace("tablet")
    link = netlab.link(None, tablet, subnet=1)
    public = "https://sidecoach.school.test:8443"
    config = make_config(
        tmp_path, host=link.a_ip, ice_listen_ips=(link.a_ip,), public_url=public
    )
    async with running_server(config) as server:
        session = await server.create_session()
        teacher_token = server.invite(session.id, "teacher")
        coach_token = server.invite(session.id, "coach")
        async with launched_chromium(tablet.wrapper(str(CHROMIUM), tmp_path)) as browser:
            teacher = await new_tab(browser, f"{server.url}/join?token={teacher_token}", "teacher")
            await teacher.wait("window.sidecoach && sidecoach.state === 'joined'", timeout=30)
            assert not await teacher.js("window.isSecureContext")
            banner = await teacher.page.inner_text("#secure-banner")
            assert f"Open this page with {public}/join: {INSECURE}." in banner, banner
            href = await teacher.js("document.querySelector('#secure-banner a').href")
            assert href == f"{public}/join?token={teacher_token}"
            assert await teacher.js("document.querySelector('#go-live').disabled")
            assert "getUserMedia" not in await teacher.page.inner_text("body")
            await teacher.screenshot("teacher-over-plain-http")

            coach = await new_tab(browser, f"{server.url}/join?token={coach_token}", "coach")
            await coach.wait("window.sidecoach && sidecoach.state === 'joined'", timeout=30)
            assert INSECURE in await coach.page.inner_text("#secure-banner")
            mic = await coach.page.inner_text("#mic-state")
            assert INSECURE in mic and "You can still send cues" in mic, mic
            assert await coach.js("document.querySelector('#ptt').disabled")

            check = await new_tab(browser, f"{server.url}/check", "check")
            await check.wait("window.sidecoach && sidecoach.verdicts.camera.status === 'red'")
            assert INSECURE in (await check.js("sidecoach.verdicts.camera.words"))
            # a page that needs no camera (an observer watches) says nothing of the sort
            url = f"{server.url}/join?token={server.invite(session.id, 'observer')}"
            observer = await new_tab(browser, url, "observer")
            await observer.wait("window.sidecoach && sidecoach.state === 'joined'", timeout=30)
            assert not await observer.page.is_visible("#secure-banner")
            assert page_errors(teacher, coach, check, observer) == []
