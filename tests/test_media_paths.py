"""Keyframes for late joiners, a second camera mid-session, RTCP both ways,
H.264 — all through the real server with real aiortc peers."""

from __future__ import annotations

import time
from typing import Any

import pytest

from testkit.peers import PatternVideoTrack, ToneTrack, wait_for
from testkit.server import LiveServer

pytestmark = pytest.mark.integration


def stats_of(report: Any, kind: str) -> list[Any]:
    return [s for s in report.values() if s.type == kind]


async def test_late_coach_gets_a_picture_without_waiting_for_the_gop(
    live_server: LiveServer,
) -> None:
    """aiortc's VP8 encoder makes a keyframe every 3000 frames (100 s), so a
    coach joining later sees a picture only if the SFU asks for one."""
    session = await live_server.create_session()
    teacher = live_server.participant(session.id, "teacher")
    early = live_server.participant(session.id, "coach")
    late = live_server.participant(session.id, "coach")
    try:
        await teacher.join()
        camera = await teacher.publish(PatternVideoTrack(), "camera")
        await early.join()
        await wait_for(lambda: early.tracks(producerId=camera) != [])
        first = early.tracks(producerId=camera)[0]
        await wait_for(lambda: first.frames >= 60, timeout=15)  # 2 s into the GOP

        live = live_server.manager.get(session.id)
        assert live is not None
        producer = live.router.producers[camera]
        requested_before = producer.keyframes_requested
        joined_at = time.monotonic()
        await late.join()
        await wait_for(lambda: late.tracks(producerId=camera) != [])
        video = late.tracks(producerId=camera)[0]
        await wait_for(lambda: video.frames >= 1, timeout=10)
        print(
            f"late joiner: first decoded frame {video.first_frame_at - joined_at:.3f} s after join"
        )  # type: ignore[operator]
        assert video.width == 320
        assert producer.keyframes_requested > requested_before
        # the early coach kept receiving throughout
        assert first.frames > 60
    finally:
        for p in (teacher, early, late):
            await p.close()


async def test_second_camera_mid_session_reaches_coaches(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    teacher = live_server.participant(session.id, "teacher")
    coaches = [live_server.participant(session.id, "coach") for _ in "ab"]
    try:
        await teacher.join()
        cam1 = await teacher.publish(PatternVideoTrack(), "camera")
        await teacher.publish(ToneTrack(), "mic")
        for c in coaches:
            await c.join()
            await wait_for(lambda c=c: len(c.received) == 2)  # type: ignore[misc]
            first = c.tracks(producerId=cam1)[0]
            await wait_for(lambda f=first: f.frames >= 5)  # type: ignore[misc]
        cam2 = await teacher.publish(PatternVideoTrack(width=160, height=120), "camera")
        for c in coaches:
            await wait_for(lambda c=c: len(c.tracks(producerId=cam2)) == 1)  # type: ignore[misc]
            second = c.tracks(producerId=cam2)[0]
            # (generous bounds: three aiortc peers encode and decode on this machine)
            await wait_for(lambda s=second: s.frames >= 5, timeout=30)  # type: ignore[misc]
            assert second.width == 160
            first = c.tracks(producerId=cam1)[0]
            before = first.frames
            await wait_for(lambda f=first, n=before: f.frames > n + 5, timeout=30)  # type: ignore[misc]
            assert first.width == 320
            assert any(n == "producer-added" and d["producerId"] == cam2 for n, d in c.events)

        # and taking it away again tells everyone and stops its track
        reply = await teacher.call("unpublish", {"producerId": cam2})
        assert reply["ok"]
        for c in coaches:
            await wait_for(
                lambda c=c: any(  # type: ignore[misc]
                    n == "producer-removed" and d["producerId"] == cam2 for n, d in c.events
                )
            )
        live = live_server.manager.get(session.id)
        assert live is not None and cam2 not in live.router.producers
    finally:
        for p in (teacher, *coaches):
            await p.close()


async def test_rtcp_sender_reports_to_consumers_and_receiver_reports_to_publisher(
    live_server: LiveServer,
) -> None:
    session = await live_server.create_session()
    async with live_server.classroom(session.id, mic=True) as (teacher, coach):

        async def coach_has_sender_reports() -> bool:
            for t in coach.pc.getTransceivers():
                if not stats_of(await t.receiver.getStats(), "remote-outbound-rtp"):
                    return False
            return True

        async def teacher_has_receiver_reports() -> bool:
            for t in teacher.pc.getTransceivers():
                if not stats_of(await t.sender.getStats(), "remote-inbound-rtp"):
                    return False
            return True

        deadline = time.monotonic() + 10
        while not (await coach_has_sender_reports() and await teacher_has_receiver_reports()):
            assert time.monotonic() < deadline, "no RTCP reports within 10 s"
            await wait_for(lambda: True, timeout=0.5)
            await __import__("asyncio").sleep(0.3)
        for t in coach.pc.getTransceivers():
            sr = stats_of(await t.receiver.getStats(), "remote-outbound-rtp")[0]
            assert sr.packetsSent > 0


async def test_h264_is_forwarded_when_offered(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    teacher = live_server.participant(session.id, "teacher")
    coach = live_server.participant(session.id, "coach")
    try:
        await teacher.join()
        camera = await teacher.publish(PatternVideoTrack(), "camera", codec="H264")
        await wait_for(lambda: teacher.published(camera))
        await coach.join()
        await wait_for(lambda: coach.tracks(producerId=camera) != [])
        video = coach.tracks(producerId=camera)[0]
        assert video.info["codec"].lower() == "video/h264"
        await wait_for(lambda: video.frames >= 5, timeout=15)
        assert video.width == 320
    finally:
        await teacher.close()
        await coach.close()
