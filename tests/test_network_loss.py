"""5 % packet loss on the teacher's uplink (testkit/netns.py): the server asks
the teacher again (NACK), the teacher's sender retransmits, and the coach
keeps decoding the classroom with (almost) none of the loss left.

Real aiortc peers, not Chromium: the teacher runs in its own namespace as a
process (testkit/netns_peer.py), so its uplink alone is shaped, and the coach
runs in this process, where every decoded frame and RTP counter is at hand.
Chromium's recovery is the same protocol (NACK answered from the sender's
history); what is under test here is the SFU's half of it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.netns import Netlab
from testkit.netns_peer import PeerAgent, inbound_stats
from testkit.peers import PatternVideoTrack, wait_for
from testkit.server import make_config, running_server


@pytest.mark.slow
async def test_coach_keeps_decoding_with_5_percent_loss_on_the_teacher_uplink(
    netlab: Netlab, tmp_path: Path
) -> None:
    classroom = netlab.namespace("classroom")
    link = netlab.link(None, classroom, subnet=2)
    config = make_config(tmp_path, host=link.a_ip, ice_listen_ips=(link.a_ip,))
    async with running_server(config) as server:
        session = await server.create_session(recording=False)
        teacher = PeerAgent(
            netlab, classroom, "teacher", url=server.url,
            token=server.invite(session.id, "teacher"), ice_ip=link.b_ip, camera=True,
        )  # fmt: skip
        await teacher.wait_event("published")
        coach = server.participant(session.id, "coach")
        coach.ice_ips = (link.a_ip,)  # same namespace as the server: a clean path
        try:
            await coach.join()
            await wait_for(lambda: len(coach.tracks(source="camera")) == 1, timeout=15)
            video = coach.tracks(source="camera")[0]
            await wait_for(lambda: video.frames > 30, timeout=20)

            link.shape("up", loss_pct=5)
            before = (await inbound_stats(coach.pc))["video"]
            frames = video.frames
            # the picture goes on: 10 s of video (300 frames) still decode
            await wait_for(lambda: video.frames >= frames + 300, timeout=60)
            after = (await inbound_stats(coach.pc))["video"]
            dropped = link.dropped("up")
        finally:
            link.shape("up")
            await coach.close()
            teacher.stop()
    received = after["packetsReceived"] - before["packetsReceived"]
    lost_at_coach = after["packetsLost"] - before["packetsLost"]
    # the link really lost packets, and retransmissions filled the gaps
    assert dropped > 0.01 * received, (dropped, received)
    assert lost_at_coach < dropped / 2, (lost_at_coach, dropped)


@pytest.mark.slow
async def test_loss_toward_one_coach_is_recovered_from_the_server_cache_and_no_one_else_sees_it(
    netlab: Netlab, tmp_path: Path
) -> None:
    """5 % of the packets to one coach (at home, on lossy Wi-Fi) are lost:
    that coach NACKs, the server answers from its packet cache (the teacher
    is not asked again), the coach keeps decoding, and a second coach on a
    clean path sees no loss and sends no NACK at all."""
    home = netlab.namespace("home")
    link = netlab.link(None, home, subnet=4)
    config = make_config(tmp_path, host=link.a_ip, ice_listen_ips=(link.a_ip,))
    async with running_server(config) as server:
        session = await server.create_session(recording=False)
        teacher = server.participant(session.id, "teacher")
        clean = server.participant(session.id, "coach")
        teacher.ice_ips = clean.ice_ips = (link.a_ip,)
        lossy = PeerAgent(
            netlab, home, "lossy-coach", url=server.url,
            token=server.invite(session.id, "coach"), ice_ip=link.b_ip,
        )  # fmt: skip
        try:
            await teacher.join()
            camera = await teacher.publish(PatternVideoTrack(), "camera")
            await clean.join()
            lossy_id = (await lossy.wait_event("joined"))["participantId"]
            await wait_for(lambda: len(clean.tracks(source="camera")) == 1, timeout=15)
            video = clean.tracks(source="camera")[0]
            await wait_for(lambda: video.frames > 30, timeout=20)
            live = server.manager.get(session.id)
            assert live is not None
            producer = live.router.producers[camera]
            consumers = {c.participant_id: c for c in producer.consumers.values()}
            await lossy.wait_decoding()  # its own ICE/DTLS may still be on the way

            link.shape("down", loss_pct=5)  # server -> the coach at home
            clean_before = (await inbound_stats(clean.pc))["video"]
            lossy_before = (await lossy.stats())["video"]
            frames = video.frames
            await wait_for(lambda: video.frames >= frames + 300, timeout=60)  # ~10 s
            lossy_report = await lossy.report()
            clean_after = (await inbound_stats(clean.pc))["video"]
            dropped = link.dropped("down")
        finally:
            link.shape("down")
            await teacher.close()
            await clean.close()
            lossy.stop()
    lossy_after = lossy_report["inbound"]["video"]
    received = lossy_after["packetsReceived"] - lossy_before["packetsReceived"]
    still_missing = lossy_after["packetsLost"] - lossy_before["packetsLost"]
    # the lossy coach lost packets on its link, NACKed them, the server's
    # cache resent them, and the coach kept decoding the picture
    assert dropped > 0.01 * received, (dropped, received)
    assert lossy_report["video"]["frames"] > 100, lossy_report
    assert consumers[lossy_id].packets_retransmitted > 0.5 * dropped, (
        consumers[lossy_id].packets_retransmitted, dropped)  # fmt: skip
    assert still_missing < dropped / 2, (still_missing, dropped)
    assert producer.nacks_upstream == 0  # the teacher was never asked again
    # the other coach noticed nothing
    assert clean_after["packetsLost"] - clean_before["packetsLost"] == 0
    assert consumers[clean.joined["participantId"]].packets_nacked == 0
