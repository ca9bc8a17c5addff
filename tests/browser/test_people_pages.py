"""People in Chromium, signed in through a real OpenID Connect provider on
loopback (oidc-provider-mock): the teacher's home -> Go live; the coach's
home -> Watch; sign-out ends the lesson's sockets; a coach schedules a
lesson; a group's debrief started from the home page."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from server.http.login import PEOPLE_KEY
from server.people.principal import PersonRole
from server.people.service import People
from server.storage.sessions import LessonPeople, SessionSettings
from testkit.browser import Tab, new_tab, page_errors
from testkit.oidc import CLIENT_ID, Provider, oidc_provider
from testkit.people import fake_recording
from testkit.procs import free_port
from testkit.server import LiveServer, make_config, running_server

pytestmark = pytest.mark.browser

USERS = [
    {"sub": "rivera-sub", "email": "rivera@district.example.org", "email_verified": True},
    {"sub": "okafor-sub", "email": "okafor@district.example.org", "email_verified": True},
]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with oidc_provider(tmp_path_factory.mktemp("oidc"), USERS) as p:
        yield p


@dataclass
class Site:
    server: LiveServer
    people: People
    coach: str
    teacher: str
    school: str


@pytest_asyncio.fixture(loop_scope="session")
async def site(provider: Provider, tmp_path: Path) -> AsyncIterator[Site]:
    port = free_port()
    config = make_config(
        tmp_path,
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret="browser-test-secret",
    )
    async with running_server(config) as server:
        people: People = server.app[PEOPLE_KEY]
        d = people.directory
        school = await d.create_school("Lincoln Elementary")
        await d.allow_domain("district.example.org", school)
        coach = await d.create_person("Ms Rivera", "rivera@district.example.org")
        await d.grant(coach, PersonRole.COACH, school)
        teacher = await d.create_person("Mr Okafor", "okafor@district.example.org")
        await d.grant(teacher, PersonRole.TEACHER, school)
        await d.add_to_caseload(coach, [teacher])
        yield Site(server, people, coach, teacher, school)


async def signed_in(browser: Any, site: Site, sub: str, name: str) -> Tab:
    """A fresh browser context signed in through the provider's page."""
    tab = await new_tab(browser, site.server.url + "/signin", name)
    await tab.page.click("#oidc-sign-in")
    await tab.page.fill("input[name=sub]", sub)
    await tab.page.click("button[type=submit]:not([name=action])")
    await tab.page.wait_for_url(site.server.url + "/home", timeout=15000)
    return tab


async def schedule(site: Site, *, title: str, in_s: float) -> str:
    record = await site.people.lessons.store.create(
        title=title,
        teacher_name="Mr Okafor",
        settings=SessionSettings(recording=False),
        scheduled_for=time.time() + in_s,
        people=LessonPeople(teacher_id=site.teacher, coach_id=site.coach, school_id=site.school),
    )
    return record.id


@pytest.mark.slow  # the fast tier has the same flow over HTTP (tests/test_people.py, test_oidc.py)
async def test_teacher_goes_live_from_home_coach_watches_and_sign_out_ends_the_sockets(
    browser: Any, site: Site
) -> None:
    await schedule(site, title="Fractions", in_s=600)
    started = time.perf_counter()
    teacher = await signed_in(browser, site, "okafor-sub", "teacher-home")
    signed_in_ms = (time.perf_counter() - started) * 1000
    print(f"\nsign-in through the provider to the home page: {signed_in_ms:.0f} ms")
    next_text = await teacher.page.inner_text("#next-lesson")
    assert next_text.startswith("Next: ") and "with Ms Rivera" in next_text
    await teacher.page.click("#go-live")
    await teacher.wait("window.sidecoach && sidecoach.state === 'joined'", timeout=30)
    await teacher.page.click("#go-live")
    await teacher.wait("sidecoach.live === 'live'", timeout=60)

    coach = await signed_in(browser, site, "rivera-sub", "coach-home")
    assert "Fractions" in await coach.page.inner_text("#today")
    await coach.page.click("#today button:has-text('Watch')")
    await coach.wait("document.querySelector('video.remote-video')?.videoWidth > 0", timeout=40)
    assert await coach.video_playing()

    # the teacher signs out in another tab of the same browser: the lesson's
    # socket is removed at once, and the page does not rejoin
    other = await teacher.page.context.new_page()
    await other.goto(site.server.url + "/home")
    await other.click("#sign-out")
    await other.wait_for_url(site.server.url + "/signin")
    await teacher.wait("sidecoach.state === 'failed'", timeout=15)
    assert "signed out" in (await teacher.page.inner_text("body")).lower()
    await teacher.screenshot("people-signed-out")
    assert page_errors(coach) == []


@pytest.mark.slow
async def test_a_coach_schedules_a_lesson_the_teacher_finds_it_home(
    browser: Any, site: Site
) -> None:
    coach = await signed_in(browser, site, "rivera-sub", "coach-schedules")
    when = time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() + 2 * 86400))
    await coach.page.select_option("#schedule select[name=teacher]", site.teacher)
    await coach.page.fill("#schedule input[name=title]", "Reading groups")
    await coach.page.fill("#schedule input[name=when]", when)
    await coach.page.uncheck("#schedule input[name=recording]")
    await coach.page.click("#schedule-lesson")
    await coach.page.wait_for_url(site.server.url + "/home")
    teacher = await signed_in(browser, site, "okafor-sub", "teacher-finds")
    text = await teacher.page.inner_text("#next-lesson")
    assert "Reading groups" in text and "with Ms Rivera" in text
    assert "Not recorded" in await teacher.page.inner_text("#teaching")
    feed = await coach.page.context.request.post(
        site.server.url + "/calendar/renew", form={"csrf": await csrf(coach)}
    )
    assert feed.ok
    assert page_errors(coach, teacher) == []


async def csrf(tab: Tab) -> str:
    value = await tab.page.get_attribute("input[name=csrf]", "value")
    assert value
    return value


@pytest.mark.slow
async def test_a_group_debrief_started_from_home_is_found_by_each_member(
    browser: Any, site: Site
) -> None:
    await fake_recording(site.server, site.teacher, school=site.school)
    coach = await signed_in(browser, site, "rivera-sub", "coach-group")
    await coach.page.fill("#new-group input[name=name]", "Grade 3 PLC")
    await coach.page.check(f"#new-group input[value='{site.teacher}']")
    await coach.page.click("#new-group button[type=submit]")
    await coach.page.wait_for_url(site.server.url + "/home")
    await coach.page.click("#groups button:has-text('Start a debrief')")
    await coach.page.wait_for_url(site.server.url + "/home")
    teacher = await signed_in(browser, site, "okafor-sub", "teacher-group")
    # each member finds it on their home page (no link was minted for them)
    for tab in (teacher, coach):
        await tab.page.goto(site.server.url + "/home")
        await tab.page.click("#groups button:has-text('Join the debrief')")
        await tab.wait("window.sidecoach && sidecoach.role === 'member'", timeout=30)
        assert "Grade 3 PLC: debrief" in await tab.page.inner_text("header")
    assert page_errors(coach, teacher) == []
