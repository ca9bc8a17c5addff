"""5 % packet loss on the teacher's uplink (tests/netns.py): the server asks
the teacher again (NACK), the teacher's sender retransmits, and the coach
keeps decoding the classroom with (almost) none of the loss left.

Real aiortc peers, not Chromium: the teacher runs in its own namespace as a
process (tests/netns_peer.py), so its uplink alone is shaped, and the coach
runs in this process, where every decoded frame and RTP counter is at hand.
Chromium's recovery is the same protocol (NACK answered from the sender's
history); what is under test here is the SFU's half of it.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_config, running_server
from tests.netns import Netlab
from tests.netns_peer import PeerAgent, inbound_stats
from tests.peers import wait_for


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
