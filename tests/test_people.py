"""People over HTTP against a real server: password sign-in, the home
pages, scheduling, joining live, CSRF, open redirects, brute force, session
fixation, a coach reading outside their caseload, a disabled person."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from yarl import URL

from server.http.login import PEOPLE_KEY
from server.people.service import People
from server.storage.sessions import LessonPeople, SessionSettings
from testkit.people import Browser, District, fake_recording, seed_district
from testkit.server import LiveServer


def people_of(server: LiveServer) -> People:
    return server.app[PEOPLE_KEY]


@pytest.fixture
async def district(live_server: LiveServer) -> District:
    return await seed_district(people_of(live_server))


@pytest.fixture
async def browsers(live_server: LiveServer) -> AsyncIterator[list[Browser]]:
    made: list[Browser] = []
    yield made
    for b in made:
        await b.close()


async def browser(
    live_server: LiveServer, made: list[Browser], email: str | None = None
) -> Browser:
    b = Browser(live_server.url)
    made.append(b)
    if email is not None:
        r = await b.sign_in(email)
        assert r.status == 303, await r.text()
    return b


async def test_teacher_signs_in_sees_next_lesson_and_goes_live(
    live_server: LiveServer, district: District, browsers: list[Browser]
) -> None:
    coach = await browser(live_server, browsers, "rivera@district.example.org")
    when = datetime.fromtimestamp(time.time() + 3600).strftime("%Y-%m-%dT%H:%M")
    r = await coach.post(
        "/lessons",
        {"teacher": district.teacher, "title": "Fractions", "when": when, "recording": "on"},
    )
    assert r.status == 303, await r.text()
    teacher = await browser(live_server, browsers, "okafor@district.example.org")
    home = await teacher.get("/home")
    html = await home.text()
    assert "Next: " in html and "with Ms Rivera" in html and "Go live" in html
    lesson_id = re.search(r"/lessons/([^/]+)/go", html).group(1)  # type: ignore[union-attr]
    go = await teacher.post(f"/lessons/{lesson_id}/go")
    assert go.status == 303 and go.headers["Location"].startswith("/join?token=")
    page = await teacher.get(go.headers["Location"])
    assert page.status == 200 and "teacher" in await page.text()


async def test_a_coach_reads_their_caseload_and_nothing_else_through_any_route(
    live_server: LiveServer, district: District, browsers: list[Browser]
) -> None:
    mine_session, mine = await fake_recording(live_server, district.teacher, school=district.school)
    other_session, other = await fake_recording(
        live_server, district.outsider, school=district.school
    )
    coach = await browser(live_server, browsers, "rivera@district.example.org")
    listed = (await (await coach.get("/api/lessons")).json())["lessons"]
    assert [x["session"]["id"] for x in listed] == [mine_session]
    routes = [
        "/api/recordings/{r}",
        "/api/recordings/{r}/timeline",
        "/recordings/{r}/camera.webm",
        "/api/recordings/{r}/export/cues.vtt",
        "/api/recordings/{r}/comments",
        "/api/recordings/{r}/clips",
    ]
    for route in routes:
        ok = await coach.get(route.format(r=mine))
        assert ok.status == 200, (route, ok.status, await ok.text())
        refused = await coach.get(route.format(r=other))
        assert refused.status == 404, (route, refused.status)
    clip = await coach.post(f"/api/recordings/{other}/clips", {"start_ms": "0", "end_ms": "500"})
    assert clip.status in (400, 404), clip.status
    go = await coach.post(f"/lessons/{other_session}/go")
    assert go.status == 403
    # every refusal is in the audit log
    entries = await people_of(live_server).audit.query(action="refused", person=None)
    assert {e.get("recording") for e in entries} >= {other}
    # a district admin reads it, and the read is audited
    admin = await browser(live_server, browsers, "admin@district.example.org")
    assert (await admin.get(f"/api/recordings/{other}")).status == 200
    reads = await people_of(live_server).audit.query(recording=other, action="view")
    assert reads and reads[0]["who"]["person"] == district.admin


async def test_the_teacher_shares_a_recording_beyond_the_defaults(
    live_server: LiveServer, district: District, browsers: list[Browser]
) -> None:
    session, rid = await fake_recording(live_server, district.outsider, school=district.school)
    coach = await browser(live_server, browsers, "rivera@district.example.org")
    assert (await coach.get(f"/api/recordings/{rid}")).status == 404
    chen = await browser(live_server, browsers, "chen@district.example.org")
    r = await chen.post(
        f"/lessons/{session}/share", {"email": "rivera@district.example.org", "role": "viewer"}
    )
    assert r.status == 303
    view = await coach.get(f"/api/recordings/{rid}")
    assert view.status == 200
    assert (await view.json())["view"]["permissions"]["whispers"] is False  # an observer's view
    # only the teacher shares it
    r = await coach.post(f"/lessons/{session}/share", {"email": "diaz@district.example.org"})
    assert r.status == 403


async def test_scheduling_outside_the_caseload_is_refused_and_changes_nothing(
    live_server: LiveServer, district: District, browsers: list[Browser]
) -> None:
    coach = await browser(live_server, browsers, "rivera@district.example.org")
    before = len(await live_server.store.list())
    r = await coach.post(
        "/lessons", {"teacher": district.outsider, "title": "X", "when": "2030-01-01T09:10"}
    )
    assert r.status == 403 and (await r.json())["error"]["code"] == "not_in_caseload"
    teacher = await browser(live_server, browsers, "okafor@district.example.org")
    r = await teacher.post(
        "/lessons", {"teacher": district.teacher, "title": "X", "when": "2030-01-01T09:10"}
    )
    assert r.status == 403
    assert len(await live_server.store.list()) == before


async def test_csrf_and_other_origins_are_refused(
    live_server: LiveServer, district: District, browsers: list[Browser]
) -> None:
    coach = await browser(live_server, browsers, "rivera@district.example.org")
    form = {"teacher": district.teacher, "title": "X", "when": "2030-01-01T09:10"}
    r = await coach.post("/lessons", form, csrf=False)
    assert r.status == 403 and (await r.json())["error"]["code"] == "csrf_failed"
    r = await coach.post("/lessons", {**form, "csrf": "forged"}, csrf=False)
    assert r.status == 403
    # an empty token is no token: the cookie decides, so the CSRF check applies
    r = await coach.post("/lessons", form, csrf=False, headers={"Authorization": "Bearer "})
    assert r.status == 403 and (await r.json())["error"]["code"] == "csrf_failed"
    r = await coach.post("/lessons?token=", form, csrf=False)
    assert r.status == 403
    r = await coach.post("/lessons", form, headers={"Origin": "https://evil.example"})
    assert r.status == 403 and (await r.json())["error"]["code"] == "csrf_failed"
    assert await live_server.store.list() == []
    r = await coach.post("/lessons", form)
    assert r.status == 303


NOT_HERE = [
    "//evil.example/x",
    "https://evil.example/",
    "/\\evil.example",
    "javascript:alert(1)",
    "/home\r\nSet-Cookie: x=1",
    "evil",
    "/" + "x" * 600,
]


async def test_next_never_leaves_the_site(
    live_server: LiveServer, district: District, browsers: list[Browser]
) -> None:
    b = await browser(live_server, browsers)
    for target in NOT_HERE:
        r = await b.sign_in("okafor@district.example.org", next_=target)
        assert r.status == 303 and r.headers["Location"] == "/home", target
    r = await b.sign_in("okafor@district.example.org", next_="/lessons")
    assert r.headers["Location"] == "/lessons"


async def test_brute_force_locks_the_account(
    live_server: LiveServer, district: District, browsers: list[Browser]
) -> None:
    b = await browser(live_server, browsers)
    limit = live_server.config.limits.login_failures_before_lockout
    codes = [
        (await b.sign_in("okafor@district.example.org", "wrong password!")).status
        for _ in range(limit)
    ]
    assert codes[:-1] == [401] * (limit - 1) and codes[-1] == 429
    r = await b.sign_in("okafor@district.example.org")  # the right one, too late
    assert r.status == 429
    assert (await b.get("/home")).status == 303  # not signed in
    refused = await people_of(live_server).audit.query(action="sign-in-refused")
    assert refused[0]["reason"] == "locked"
    # an unknown e-mail gets the same answer as a wrong password
    assert (await b.sign_in("nobody@district.example.org", "whatever!!")).status == 401


async def test_session_fixation_a_planted_cookie_is_never_the_session(
    live_server: LiveServer, district: District, browsers: list[Browser]
) -> None:
    attacker = await browser(live_server, browsers, "diaz@district.example.org")
    planted = next(c.value for c in attacker.http.cookie_jar if c.key == "sidecoach_login")
    victim = await browser(live_server, browsers)
    victim.http.cookie_jar.update_cookies({"sidecoach_login": planted}, URL(live_server.url))
    await victim.sign_in("okafor@district.example.org")
    now = next(c.value for c in victim.http.cookie_jar if c.key == "sidecoach_login")
    assert now != planted
    # the planted session ended with the sign-in; the attacker's tab is out
    assert (await attacker.get("/home")).status == 303
    me = await (await victim.get("/api/me")).json()
    assert me["person"]["id"] == district.teacher


async def test_admin_set_password_must_be_changed_first(
    live_server: LiveServer, district: District, browsers: list[Browser]
) -> None:
    admin = await browser(live_server, browsers, "admin@district.example.org")
    r = await admin.post(
        "/admin/people",
        {
            "name": "New Teacher",
            "email": "new@district.example.org",
            "role": "teacher",
            "school": district.school,
            "password": "first password 1",
        },
    )
    assert r.status == 303, await r.text()
    b = await browser(live_server, browsers)
    r = await b.sign_in("new@district.example.org", "first password 1")
    assert r.headers["Location"].startswith("/account/password")
    assert (await b.get("/api/lessons")).status == 403
    r = await b.post("/account/password", {"old": "first password 1", "new": "my own password 2"})
    assert r.status == 303
    assert (await b.get("/api/lessons")).status == 200


async def test_a_disabled_person_is_out_at_once(
    live_server: LiveServer, district: District, browsers: list[Browser]
) -> None:
    from testkit.peers import Participant, wait_for

    coach = await browser(live_server, browsers, "rivera@district.example.org")
    await coach.post(
        "/lessons",
        {
            "teacher": district.teacher,
            "title": "Live",
            "when": datetime.now().strftime("%Y-%m-%dT%H:%M"),
        },
    )
    teacher = await browser(live_server, browsers, "okafor@district.example.org")
    lesson = (await live_server.store.list())[0]
    go = await teacher.post(f"/lessons/{lesson.id}/go")
    token = go.headers["Location"].split("token=", 1)[1]
    tab = Participant(live_server.url, token)
    try:
        await tab.join()
        admin = await browser(live_server, browsers, "admin@district.example.org")
        r = await admin.post(f"/admin/people/{district.teacher}/disable")
        assert r.status == 303
        await wait_for(lambda: any(e == "removed" for e, _ in tab.events), timeout=10)
        removed = next(p for e, p in tab.events if e == "removed")
        assert removed["code"] == "signed_out"
        assert (await teacher.get("/home")).status == 303
        again = Participant(live_server.url, token)
        with pytest.raises(Exception, match="signed out"):
            await again.join()
        await again.close()
    finally:
        await tab.close()


async def test_no_password_token_or_cookie_reaches_a_log(
    live_server: LiveServer,
    district: District,
    browsers: list[Browser],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from testkit.people import PASSWORD

    caplog.set_level(logging.DEBUG)
    b = await browser(live_server, browsers)
    await b.sign_in("okafor@district.example.org", "a wrong password!")
    await b.sign_in("okafor@district.example.org")
    cookie = next(c.value for c in b.http.cookie_jar if c.key == "sidecoach_login")
    feed = await (await b.post("/calendar/renew")).text()
    feed_url = re.search(r"(/calendar/[^<\s]+\.ics)", feed).group(1)  # type: ignore[union-attr]
    assert (await b.get(feed_url)).status == 200
    await b.get("/auth/oidc/callback?state=s3cr3t-state&code=s3cr3t-code")
    await b.post("/auth/logout")
    secrets = [
        PASSWORD,
        "a wrong password!",
        cookie,
        b.csrf,
        feed_url.split("/")[-1],
        "s3cr3t-state",
        "s3cr3t-code",
    ]
    text = caplog.text
    assert "/calendar/REDACTED" in text
    for secret in secrets:
        assert secret not in text, secret


async def test_the_calendar_feed_lists_the_lessons_and_is_revocable(
    live_server: LiveServer, district: District, browsers: list[Browser]
) -> None:
    coach = await browser(live_server, browsers, "rivera@district.example.org")
    when = datetime.fromtimestamp(time.time() + 86400).strftime("%Y-%m-%dT%H:%M")
    await coach.post(
        "/lessons", {"teacher": district.teacher, "title": "Fractions, period 3", "when": when}
    )
    teacher = await browser(live_server, browsers, "okafor@district.example.org")
    page = await (await teacher.post("/calendar/renew")).text()
    feed_url = re.search(r"(/calendar/[^<\s]+\.ics)", page).group(1)  # type: ignore[union-attr]
    feed = await teacher.get(feed_url)
    body = await feed.text()
    assert feed.content_type == "text/calendar"
    assert body.startswith("BEGIN:VCALENDAR\r\n") and body.count("BEGIN:VEVENT") == 1
    assert "SUMMARY:Fractions\\, period 3 (Mr Okafor\\, with Ms Rivera)" in body
    # a new secret turns the old one off; so does turning the feed off
    page = await (await teacher.post("/calendar/renew")).text()
    assert (await teacher.get(feed_url)).status == 404
    newer = re.search(r"(/calendar/[^<\s]+\.ics)", page).group(1)  # type: ignore[union-attr]
    assert (await teacher.get(newer)).status == 200
    await teacher.post("/calendar/revoke")
    assert (await teacher.get(newer)).status == 404


async def test_a_login_ended_on_another_node_leaves_the_lesson_here_too(tmp_path: Path) -> None:
    from server.core.config import Limits
    from testkit.peers import Participant, wait_for
    from testkit.server import make_config, running_server

    config = make_config(tmp_path, limits=Limits(login_recheck_s=0.2))
    async with running_server(config) as server:
        people = people_of(server)
        district = await seed_district(people)
        teacher = Browser(server.url)
        try:
            await teacher.sign_in("okafor@district.example.org")
            record = await server.store.create(
                title="Here",
                teacher_name="Mr Okafor",
                settings=SessionSettings(),
                people=LessonPeople(teacher_id=district.teacher),
            )
            go = await teacher.post(f"/lessons/{record.id}/go")
            tab = Participant(server.url, go.headers["Location"].split("token=", 1)[1])
            try:
                await tab.join()
                # another node ends the login session: only the database knows
                await people.logins.end_all(district.teacher)
                await wait_for(lambda: any(e == "removed" for e, _ in tab.events), timeout=10)
            finally:
                await tab.close()
        finally:
            await teacher.close()
