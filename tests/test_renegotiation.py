"""Renegotiation stays bounded: m-lines are reused, refused publishes leave
nothing behind, and media still flows on a reused m-line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.core.config import Limits
from testkit.peers import PatternVideoTrack, ToneTrack, wait_for
from testkit.server import LiveServer, make_config, running_server

pytestmark = pytest.mark.integration

CYCLES = 200


@pytest.fixture
async def fast_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """A server whose message rate limit lets 200 cycles run back to back."""
    limits = Limits(messages_per_second=1000.0, message_burst=1000)
    async with running_server(make_config(tmp_path, limits=limits)) as server:
        yield server


def m_lines(sdp: str) -> int:
    return sum(1 for line in sdp.splitlines() if line.startswith("m="))


@pytest.mark.slow
async def test_sdp_stays_flat_over_publish_unpublish_cycles(fast_server: LiveServer) -> None:
    session = await fast_server.create_session(recording=False)
    async with fast_server.classroom(session.id) as (teacher, coach):
        live = fast_server.manager.get(session.id)
        assert live is not None
        peer = live.participants[teacher.joined["participantId"]].peer

        async def cycle() -> int:
            """Share the screen, stop: the SDP of the offer that stopped it."""
            producer_id = await teacher.publish(PatternVideoTrack(), "screen")
            await wait_for(lambda: teacher.published(producer_id), timeout=15)
            offers = teacher.offers
            assert (await teacher.call("unpublish", {"producerId": producer_id}))["ok"]
            await wait_for(lambda: teacher.offers > offers and peer.negotiations >= teacher.offers)
            return len(peer.pc.localDescription.sdp)

        first = await cycle()
        for _ in range(CYCLES - 1):
            last = await cycle()
        # one camera, one screen m-line (parked between shares): no growth
        assert peer.transceiver_count == 2
        assert m_lines(peer.pc.localDescription.sdp) == 2
        assert last <= first + 100, (first, last)
        # and the classroom still reaches the coach
        video = coach.tracks(source="camera")[0]
        before = video.frames
        try:
            await wait_for(lambda: video.frames > before + 10)
        except AssertionError as exc:
            peer_of_coach = live.participants[coach.joined["participantId"]].peer
            legs = [
                (sub.consumer.producer.info.source, sub.consumer.packets_sent, sub.writer.ready)
                for sub in peer_of_coach._subscriptions.values()
            ]
            raise AssertionError(f"the coach's camera stopped: {legs}") from exc


async def test_refused_publishes_leave_no_transceivers(fast_server: LiveServer) -> None:
    session = await fast_server.create_session(recording=False)
    teacher = fast_server.participant(session.id, "teacher")
    try:
        await teacher.join()
        live = fast_server.manager.get(session.id)
        assert live is not None
        peer = live.participants[teacher.joined["participantId"]].peer
        for _ in range(CYCLES):
            reply = await teacher.call(
                "publish", {"source": "camera", "kind": "video", "codec": "AV1X"}
            )
            assert reply["ok"] is False and reply["error"]["code"] == "unsupported_codec", reply
        assert peer.transceiver_count == 0
        # and a good publish after all that still works
        camera = await teacher.publish(PatternVideoTrack(), "camera")
        await wait_for(lambda: teacher.published(camera), timeout=15)
        assert peer.transceiver_count == 1
    finally:
        await teacher.close()


async def test_a_reused_m_line_carries_the_new_track(live_server: LiveServer) -> None:
    """The coach's m-line for the teacher's first mic is reused for the
    second: the coach decodes the new tone on it."""
    session = await live_server.create_session(recording=False)
    async with live_server.classroom(session.id) as (teacher, coach):
        first = await teacher.publish(ToneTrack(freq=440), "mic")
        await wait_for(lambda: coach.tracks(source="mic"), timeout=15)
        old = coach.tracks(source="mic")[0]
        await wait_for(lambda: old.frames > 10)
        assert (await teacher.call("unpublish", {"producerId": first}))["ok"]
        await wait_for(lambda: coach.got("producer-removed", producerId=first))

        second = await teacher.publish(ToneTrack(freq=880), "mic")
        await wait_for(lambda: coach.tracks(producerId=second), timeout=15)
        new = coach.tracks(producerId=second)[0]
        assert new.mid == old.mid, "the parked m-line was not reused"
        await wait_for(lambda: new.frames > 25 and abs(new.tone_hz - 880) < 60, timeout=15)
        live = live_server.manager.get(session.id)
        assert live is not None
        peer = live.participants[coach.joined["participantId"]].peer
        assert peer.transceiver_count == 2  # camera + one mic m-line
