"""A 5 s cut of the teacher's or a coach's link (testkit/netns.py): nothing
is torn down (ICE consent survives a short cut), the picture comes back by
itself when the link does, nobody is duplicated, and the recording goes on
with the cut marked as a ``media-gap`` on its timeline, while a whisper
released on purpose (push-to-talk) is no gap.

Real aiortc peers: the participant whose link is cut runs in its own
namespace (testkit/netns_peer.py); the other one in this process. How fast a
page notices and recovers is measured by scripts/bench_network.py and the
browser test tests/browser/test_network_pages.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from testkit.netns import Netlab
from testkit.netns_peer import PeerAgent
from testkit.peers import PatternVideoTrack, ToneTrack, wait_for
from testkit.server import make_config, running_server

CUT_S = 5.0


@pytest.mark.slow
async def test_a_cut_teacher_link_comes_back_and_the_recording_marks_the_gap(
    netlab: Netlab, tmp_path: Path
) -> None:
    classroom = netlab.namespace("classroom")
    link = netlab.link(None, classroom, subnet=5)
    config = make_config(tmp_path, host=link.a_ip, ice_listen_ips=(link.a_ip,))
    async with running_server(config) as server:
        session = await server.create_session()
        teacher = PeerAgent(
            netlab, classroom, "teacher", url=server.url,
            token=server.invite(session.id, "teacher"), ice_ip=link.b_ip, camera=True,
        )  # fmt: skip
        coach = server.participant(session.id, "coach")
        coach.ice_ips = (link.a_ip,)
        try:
            teacher_id = (await teacher.wait_event("joined"))["participantId"]
            await teacher.wait_event("published")
            await coach.join()
            await coach.publish(ToneTrack(), "whisper")
            await wait_for(lambda: len(coach.tracks(source="camera")) == 1, timeout=15)
            video = coach.tracks(source="camera")[0]
            await wait_for(lambda: video.frames > 30, timeout=20)
            # push-to-talk: talk, let go for twice the gap limit, talk again
            assert (await coach.call("whisper-start"))["ok"]
            await asyncio.sleep(0.5)
            assert (await coach.call("whisper-stop"))["ok"]
            await asyncio.sleep(2 * config.limits.media_gap_ms / 1000)
            assert (await coach.call("whisper-start"))["ok"]
            await asyncio.sleep(0.5)

            live = server.manager.get(session.id)
            assert live is not None
            cut_at = live.clock.now_ms()
            link.cut()
            await asyncio.sleep(CUT_S)
            link.restore()
            restored_at, restored = live.clock.now_ms(), time.monotonic()
            # the coach sees the classroom again, without anyone rejoining
            await wait_for(lambda: video.frame_times[-1] > restored, timeout=30)
            frames = video.frames
            await wait_for(lambda: video.frames > frames + 30, timeout=20)
            assert [p.id for p in live.participants.values() if str(p.role) == "teacher"] == [
                teacher_id
            ]
            assert coach.got("participant-left") == [] and teacher.proc.proc.poll() is None
            await server.manager.end_session(session.id)
        finally:
            await coach.close()
            teacher.stop()
    events = recorded_events(server.config.recordings_dir / session.id)
    gaps = [e for e in events if e["type"] == "media-gap"]
    camera_gaps = [g for g in gaps if g["source"] == "camera"]
    # the cut is on the timeline, where it happened, as a camera gap
    assert len(camera_gaps) == 1, gaps
    gap = camera_gaps[0]
    assert gap["participant"] == teacher_id
    assert gap["start"] <= cut_at + 500 and gap["end"] >= restored_at - 500, (gap, cut_at)
    # the whisper was released on purpose: no gap there
    assert [g for g in gaps if g["source"] == "whisper"] == []


@pytest.mark.slow
async def test_a_cut_coach_link_comes_back_by_itself(netlab: Netlab, tmp_path: Path) -> None:
    home = netlab.namespace("home")
    link = netlab.link(None, home, subnet=6)
    config = make_config(tmp_path, host=link.a_ip, ice_listen_ips=(link.a_ip,))
    async with running_server(config) as server:
        session = await server.create_session(recording=False)
        teacher = server.participant(session.id, "teacher")
        teacher.ice_ips = (link.a_ip,)
        coach = PeerAgent(
            netlab, home, "coach", url=server.url, token=server.invite(session.id, "coach"),
            ice_ip=link.b_ip,
        )  # fmt: skip
        try:
            await teacher.join()
            await teacher.publish(PatternVideoTrack(), "camera")
            coach_id = (await coach.wait_event("joined"))["participantId"]
            await coach.wait_decoding()
            link.cut()
            await asyncio.sleep(CUT_S)
            frozen = await coach.report()  # the cut window: (almost) nothing decoded
            link.restore()
            await coach.wait_decoding()
            live = server.manager.get(session.id)
            assert live is not None
            coaches = [p.id for p in live.participants.values() if str(p.role) == "coach"]
            assert coaches == [coach_id]
            assert teacher.got("participant-left") == []
        finally:
            await teacher.close()
            coach.stop()
    assert frozen["video"]["frames"] < 30 * CUT_S / 2, frozen


def recorded_events(session_dir: Path) -> list[dict[str, object]]:
    (directory,) = list(session_dir.iterdir())
    return [json.loads(line) for line in (directory / "events.jsonl").read_text().splitlines()]
