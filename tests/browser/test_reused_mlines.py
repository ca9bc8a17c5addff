"""Chromium and reused m-lines: the server parks the m-line of a track that
ended and reuses it for the next one (the SDP stays flat). A browser
publishing again on a parked m-line, and a browser receiving a new track on
one, both get media through."""

from __future__ import annotations

import pytest

from testkit.browser import Opener
from testkit.peers import PatternVideoTrack, wait_for
from testkit.server import LiveServer

pytestmark = pytest.mark.browser


def join_path(server: LiveServer, session_id: str, role: str) -> str:
    return "/join?token=" + server.invite(session_id, role)


@pytest.mark.slow
async def test_teacher_page_goes_live_again_on_reused_m_lines(
    live_server: LiveServer, open_tab: Opener
) -> None:
    session = await live_server.create_session(recording=False)
    teacher = await open_tab(join_path(live_server, session.id, "teacher"), "teacher")
    coach = live_server.participant(session.id, "coach")
    try:
        await teacher.wait("window.sidecoach && sidecoach.state === 'joined'")
        await coach.join()
        live = live_server.manager.get(session.id)
        assert live is not None
        for round_ in range(3):
            await teacher.page.click("#go-live")
            await teacher.wait("sidecoach.published.length === 2")
            await teacher.wait("sidecoach.published.every(p => p.published)")
            camera = next(
                p["producerId"] for p in await teacher.js("sidecoach.published")
                if p["source"] == "camera"
            )  # fmt: skip
            await wait_for(lambda c=camera: coach.tracks(producerId=c), timeout=15)  # type: ignore[misc]
            video = coach.tracks(producerId=camera)[0]
            await wait_for(lambda v=video: v.frames > 10 and v.width > 0, timeout=15)  # type: ignore[misc]
            peer = live.participants[await teacher.js("sidecoach.participantId")].peer
            assert peer.transceiver_count == 2, f"round {round_}: the teacher's m-lines grew"
            await teacher.page.click("#stop")
            await teacher.page.click("#confirm-yes")  # Stop asks first
            await teacher.wait("sidecoach.published.length === 0")
            await wait_for(lambda c=camera: coach.got("producer-removed", producerId=c))  # type: ignore[misc]
        assert not teacher.errors, teacher.errors
    finally:
        await coach.close()


async def test_coach_page_receives_a_new_track_on_a_reused_m_line(
    live_server: LiveServer, open_tab: Opener
) -> None:
    session = await live_server.create_session(recording=False)
    teacher = live_server.participant(session.id, "teacher")
    try:
        await teacher.join()
        first = await teacher.publish(PatternVideoTrack(), "camera")
        coach = await open_tab(join_path(live_server, session.id, "coach"), "coach")
        await coach.wait("sidecoach.remoteTracks.some(t => t.producerId === arg)", arg=first)
        await coach.wait("document.querySelector('video.remote-video')?.videoWidth > 0")
        mid = await coach.js("sidecoach.remoteTracks.find(t => t.producerId === arg).mid", first)
        assert (await teacher.call("unpublish", {"producerId": first}))["ok"]
        await coach.wait("!sidecoach.remoteTracks.some(t => t.producerId === arg)", arg=first)

        second = await teacher.publish(PatternVideoTrack(), "camera")
        await coach.wait("sidecoach.remoteTracks.some(t => t.producerId === arg)", arg=second)
        again = await coach.js("sidecoach.remoteTracks.find(t => t.producerId === arg).mid", second)
        assert again == mid, "the server did not reuse the coach's m-line"
        await coach.wait("document.querySelector('video.remote-video')?.videoWidth > 0")
        assert await coach.video_playing()
        await coach.screenshot("coach-reused-m-line")
        assert not coach.errors, coach.errors
    finally:
        await teacher.close()
