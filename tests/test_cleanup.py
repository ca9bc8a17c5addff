"""Leaving, vanishing and never answering all clean up everything the
participant owned; the others are told; nothing leaks."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

import pytest

from server.core.config import Limits
from testkit.peers import PatternVideoTrack, ToneTrack, wait_for
from testkit.server import LiveServer, make_config, running_server

pytestmark = pytest.mark.integration


def server_tasks() -> set[asyncio.Task[object]]:
    """Tasks started by server code (not the test's own client peers)."""
    return {
        t
        for t in asyncio.all_tasks()
        if not t.done() and "/server/" in str(t.get_coro().cr_code.co_filename)  # type: ignore[union-attr]
    }


async def test_vanishing_mid_negotiation_leaves_nothing_behind(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    teacher = live_server.participant(session.id, "teacher")
    coach = live_server.participant(session.id, "coach")
    ghost = live_server.participant(session.id, "coach")
    ghost.answering = False  # takes the offer, never answers, then vanishes
    try:
        await teacher.join()
        await teacher.publish(PatternVideoTrack(), "camera")
        await coach.join()
        await wait_for(lambda: coach.received and next(iter(coach.received.values())).frames > 3)
        baseline = server_tasks()

        await ghost.join()
        await wait_for(lambda: ghost.offers >= 1)
        live = live_server.manager.get(session.id)
        assert live is not None
        ghost_id = ghost.joined["participantId"]
        peer = live.participants[ghost_id].peer
        peer_ref = weakref.ref(peer)
        pc_ref = weakref.ref(peer.pc)
        consumer_count = sum(len(p.consumers) for p in live.router.producers.values())
        assert consumer_count == 3  # the coach, the ghost, the Recorder
        del peer

        await ghost.sio.eio.disconnect(abort=True)  # the network just goes away
        await wait_for(lambda: ghost_id not in live.participants)
        await wait_for(
            lambda: any(n == "participant-left" and d["id"] == ghost_id for n, d in coach.events)
        )
        assert sum(len(p.consumers) for p in live.router.producers.values()) == 2
        await wait_for(lambda: server_tasks() <= baseline, timeout=5)
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0.05)
        assert peer_ref() is None, "the ghost's Peer is still referenced"
        assert pc_ref() is None, "the ghost's RTCPeerConnection is still referenced"

        # everyone else carries on
        video = next(iter(coach.received.values()))
        before = video.frames
        await wait_for(lambda: video.frames > before + 10)
    finally:
        for p in (teacher, coach, ghost):
            await p.close()


async def test_unanswered_offer_times_out_and_drops_the_participant(tmp_path: Path) -> None:
    config = make_config(tmp_path, limits=Limits(negotiation_timeout_s=1.0))
    async with running_server(config) as server:
        session = await server.create_session()
        teacher = server.participant(session.id, "teacher")
        teacher.answering = False
        try:
            await teacher.join()
            await teacher.publish(ToneTrack(), "mic")
            live = server.manager.get(session.id)
            assert live is not None
            await wait_for(lambda: teacher.offers == 1)
            await wait_for(lambda: not live.participants, timeout=5)
            # the teacher is told why, and the same socket can join again
            await wait_for(lambda: teacher.got("removed"))
            assert teacher.got("removed")[0]["code"] == "peer_failed"
            assert "timed out" in teacher.got("removed")[0]["message"]
            assert live.router.producers == {}
            again = await teacher.call("join", {"token": teacher.token})
            assert again["ok"], again
            assert list(live.participants) == [again["participantId"]]
        finally:
            await teacher.close()


async def test_teacher_leaving_closes_producers_and_tells_everyone(
    live_server: LiveServer,
) -> None:
    session = await live_server.create_session()
    async with live_server.classroom(session.id) as (teacher, coach):
        cam = coach.tracks(source="camera")[0].info["producerId"]
        assert (await teacher.call("leave"))["ok"]
        await wait_for(
            lambda: any(n == "producer-removed" and d["producerId"] == cam for n, d in coach.events)
        )
        assert any(n == "participant-left" for n, _ in coach.events)
        live = live_server.manager.get(session.id)
        assert live is not None and live.router.producers == {}
        assert live.router.consumers_of(coach.joined["participantId"]) == []


async def test_ending_a_session_closes_every_peer(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    async with live_server.classroom(session.id) as (_, coach):
        live = live_server.manager.get(session.id)
        assert live is not None
        peers = [p.peer for p in live.participants.values()]
        await live_server.manager.end_session(session.id)
        assert all(p.pc.connectionState == "closed" for p in peers)
        await wait_for(lambda: any(n == "session-ended" for n, _ in coach.events))
        record = await live_server.store.get(session.id)
        assert record.state == "ended"


async def test_a_client_closing_its_media_connection_is_told_and_its_seat_freed(
    live_server: LiveServer,
) -> None:
    """A client that closes its WebRTC connection (DTLS close) but keeps its
    socket is not left as a participant nobody can see or hear: it is told,
    the others see it leave, and its seat is free for a rejoin."""
    session = await live_server.create_session()
    teacher = live_server.participant(session.id, "teacher")
    coach = live_server.participant(session.id, "coach")
    try:
        await teacher.join()
        await teacher.publish(PatternVideoTrack(), "camera")
        await coach.join()
        await wait_for(lambda: coach.received and next(iter(coach.received.values())).frames > 3)
        await coach.pc.close()  # the socket stays open
        await wait_for(lambda: coach.got("removed"))
        assert coach.got("removed")[0]["code"] == "peer_failed"
        assert "closed" in coach.got("removed")[0]["message"]
        await wait_for(lambda: teacher.got("participant-left"))
        live = live_server.manager.get(session.id)
        assert live is not None
        assert set(live.participants) == {teacher.joined["participantId"]}
    finally:
        await coach.close()
        await teacher.close()
