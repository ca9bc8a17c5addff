"""Bad input at the signaling edge gets a clear error and changes nothing;
the session carries on for everyone else."""

from __future__ import annotations

import pytest

from server.core.roles import Role
from server.core.tokens import issue_invite
from testkit.peers import Participant, PatternVideoTrack, wait_for
from testkit.server import LiveServer

pytestmark = pytest.mark.integration


async def _join_error(url: str, message: object) -> dict[str, object]:
    p = Participant(url, "unused")
    try:
        await p.connect()
        reply = await p.call("join", message)
        assert reply["ok"] is False
        return reply["error"]  # type: ignore[no-any-return]
    finally:
        await p.close()


async def test_bad_tokens_are_refused(live_server: LiveServer) -> None:
    a = await live_server.create_session("Session A")
    b = await live_server.create_session("Session B")
    url = live_server.url
    expired = issue_invite(live_server.config.secret, a.id, Role.COACH, ttl_s=10, now=1_000_000)
    forged = issue_invite("another-secret-" + "y" * 40, a.id, Role.COACH, ttl_s=600)
    unknown = live_server.invite("no-such-session", "coach")
    other = live_server.invite(b.id, "coach")

    assert (await _join_error(url, {"token": expired}))["code"] == "token_expired"
    assert (await _join_error(url, {"token": forged}))["code"] == "unauthorized"
    assert (await _join_error(url, {"token": "not.a.jwt"}))["code"] == "unauthorized"
    assert (await _join_error(url, {"token": unknown}))["code"] == "session_not_found"
    wrong = await _join_error(url, {"token": other, "sessionId": a.id})
    assert wrong["code"] == "wrong_session"
    # nobody got in anywhere
    assert all(not s.participants for s in live_server.manager.sessions.values())


async def test_ended_session_refuses_joins(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    await live_server.manager.end_session(session.id)
    err = await _join_error(live_server.url, {"token": live_server.invite(session.id, "coach")})
    assert err["code"] == "session_ended"


async def test_malformed_oversized_and_wrong_role_messages(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    teacher = live_server.participant(session.id, "teacher")
    coach = live_server.participant(session.id, "coach")
    rogue = live_server.participant(session.id, "observer")
    try:
        await teacher.join()
        camera = await teacher.publish(PatternVideoTrack(), "camera")
        await coach.join()
        await wait_for(lambda: coach.received and next(iter(coach.received.values())).frames > 5)

        # before joining, nothing but join is accepted
        await rogue.connect()
        pre = await rogue.call("publish", {"source": "camera", "kind": "video"})
        assert pre["error"]["code"] == "unauthorized"
        await rogue.join()

        cases: list[tuple[str, object, str]] = [
            ("publish", {"source": "camera", "kind": "video"}, "forbidden"),  # observer
            ("publish", {"source": "whisper", "kind": "audio"}, "forbidden"),
            ("publish", {"source": "laser", "kind": "video"}, "invalid_message"),
            ("publish", "not an object", "invalid_message"),
            ("publish", {"source": "camera", "kind": "video", "extra": 1}, "invalid_message"),
            ("answer", {"negotiationId": 1, "sdp": "x" * 70_000}, "message_too_large"),
            ("answer", {"negotiationId": -1, "sdp": "v=0"}, "invalid_message"),
            ("answer", {"negotiationId": 99, "sdp": "v=0"}, "stale_answer"),
            ("unpublish", {"producerId": camera}, "unknown_producer"),  # not theirs
            ("join", {"token": "again"}, "already_joined"),
            ("no-such-event", {}, "unknown_event"),
        ]
        for event, data, code in cases:
            reply = await rogue.call(event, data)
            assert reply["ok"] is False, (event, data)
            assert reply["error"]["code"] == code, (event, data, reply)

        # a coach may not publish a camera, the teacher may not whisper
        reply = await coach.call("publish", {"source": "camera", "kind": "video"})
        assert reply["error"]["code"] == "forbidden"
        reply = await teacher.call("publish", {"source": "whisper", "kind": "audio"})
        assert reply["error"]["code"] == "forbidden"

        # the session carried on: the coach still receives new frames
        video = next(iter(coach.received.values()))
        before = video.frames
        await wait_for(lambda: video.frames > before + 10)
        assert rogue.sio.connected
        live = live_server.manager.get(session.id)
        assert live is not None and len(live.router.producers) == 1
    finally:
        for p in (teacher, coach, rogue):
            await p.close()


async def test_flood_is_rate_limited_and_connection_survives(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    p = live_server.participant(session.id, "observer")
    try:
        await p.join()
        codes = [
            (await p.call("unpublish", {"producerId": "x"}))["error"]["code"] for _ in range(90)
        ]
        assert "rate_limited" in codes
        assert p.sio.connected
    finally:
        await p.close()
