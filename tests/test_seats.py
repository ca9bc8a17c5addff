"""Seats: one invite cannot fill a lesson, a teacher always gets into their
own lesson, a replaced seat's owner is told, members stay out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.core.config import Limits
from testkit.peers import Participant, wait_for
from testkit.server import LiveServer, make_config, running_server

pytestmark = pytest.mark.integration


@pytest.fixture
async def small_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    limits = Limits(max_participants=4, seats_per_invite=2)
    async with running_server(make_config(tmp_path, limits=limits)) as server:
        yield server


async def test_one_invite_holds_a_few_seats_and_replaces_its_oldest(
    small_server: LiveServer,
) -> None:
    session = await small_server.create_session(recording=False)
    token = small_server.invite(session.id, "observer")
    people = [Participant(small_server.url, token) for _ in range(4)]
    try:
        ids = [(await p.join())["participantId"] for p in people]
        live = small_server.manager.get(session.id)
        assert live is not None
        assert sorted(live.participants) == sorted(ids[2:])  # two seats, the newest
        for old in people[:2]:
            await wait_for(lambda old=old: old.got("removed"))  # type: ignore[misc]
            assert old.got("removed")[0]["code"] == "replaced"
    finally:
        for p in people:
            await p.close()


async def test_a_teacher_always_gets_into_their_own_lesson(small_server: LiveServer) -> None:
    session = await small_server.create_session(recording=False)
    others = [small_server.participant(session.id, "observer") for _ in range(4)]
    teacher_token = small_server.invite(session.id, "teacher")
    ghost = Participant(small_server.url, teacher_token)
    teacher = Participant(small_server.url, teacher_token)
    try:
        # three other invites fill every seat but the teacher's
        for p in others[:3]:
            await p.join()
        await others[3].connect()
        reply = await others[3].call("join", {"token": others[3].token})
        assert reply["error"]["code"] == "limit_reached"
        # the teacher joins, then joins again while the first connection is a ghost
        ghost.answering = False
        await ghost.join()
        joined = await teacher.join()
        live = small_server.manager.get(session.id)
        assert live is not None
        teachers = [p for p in live.participants.values() if p.role == "teacher"]
        assert [t.id for t in teachers] == [joined["participantId"]]
        await wait_for(lambda: ghost.got("removed"))
        assert ghost.got("removed")[0]["code"] == "replaced"
    finally:
        for p in (*others, ghost, teacher):
            await p.close()


async def test_a_member_invite_does_not_join_a_lesson(live_server: LiveServer) -> None:
    session = await live_server.create_session(recording=False)
    member = live_server.participant(session.id, "member")
    try:
        await member.connect()
        reply = await member.call("join", {"token": member.token})
        assert reply["error"]["code"] == "forbidden"
        assert "debrief" in reply["error"]["message"]
        live = live_server.manager.get(session.id)
        assert live is None or not live.participants
    finally:
        await member.close()
