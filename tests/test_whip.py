"""WHIP ingest and WHEP egress against a real server: an aiortc client
that makes the one offer (as OBS or an encoder does) publishes into a
lesson on a camera token; a coach's page sees it, the recording holds it;
a WHEP viewer sees the classroom and never a whisper; and the HTTP
conformance of both (RFC 9725): status codes, headers, CORS, PATCH,
DELETE, refusals that change nothing."""

from __future__ import annotations

import re
import time
from pathlib import Path

import av
import pytest

from server.core.config import Limits
from server.core.roles import Role
from server.core.tokens import issue_camera_token
from server.recording.manifest import read_manifest
from testkit.netns_peer import inbound_stats
from testkit.peers import PatternVideoTrack, ToneTrack, wait_for
from testkit.server import TEST_SECRET, LiveServer, make_config, running_server
from testkit.whip import HttpPeer, request
from tests.test_recording import ffprobe_frames

pytestmark = pytest.mark.integration

WHISPER_HZ = 1000.0
CLASSROOM_HZ = 440.0


def camera_token(session_id: str, **kw: object) -> str:
    return issue_camera_token(TEST_SECRET, session_id, ttl_s=3600, **kw)  # type: ignore[arg-type]


def whip(server: LiveServer, session_id: str, token: str) -> HttpPeer:
    return HttpPeer(server.url, f"/whip/{session_id}", token)


def whep(server: LiveServer, session_id: str, token: str) -> HttpPeer:
    return HttpPeer(server.url, f"/whep/{session_id}", token)


async def test_a_whip_camera_is_seen_by_the_coach_and_recorded(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    coach = live_server.participant(session.id, "coach")
    camera = whip(live_server, session.id, camera_token(session.id))
    try:
        await coach.join()
        posted = time.monotonic()
        reply = await camera.start(send=[PatternVideoTrack(), ToneTrack(CLASSROOM_HZ)])
        assert reply.status == 201, reply.body
        assert reply.headers["Content-Type"].startswith("application/sdp")
        assert reply.headers["Location"].startswith(f"/whip/{session.id}/")
        assert reply.headers["ETag"].startswith('"')
        # the coach's page shows the device as a participant, and its tracks
        await wait_for(lambda: coach.got("participant-joined") != [])
        joined = coach.got("participant-joined")[-1]
        assert joined["name"] == "Room camera (WHIP)" and joined["role"] == "camera"
        await wait_for(lambda: len(coach.tracks(role="camera")) == 2, timeout=15)
        video = coach.tracks(role="camera", source="camera")[0]
        audio = coach.tracks(role="camera", source="mic")[0]
        await wait_for(lambda: video.frames > 10, timeout=15)
        await wait_for(lambda: audio.tone_hz > 0, timeout=10)
        assert video.first_frame_at is not None
        print(
            f"WHIP POST -> 201 in {reply.seconds * 1000:.0f} ms; first frame at the coach "
            f"{(video.first_frame_at - posted) * 1000:.0f} ms after the POST"
        )
        assert (video.width, video.height) == (320, 240)
        assert abs(audio.tone_hz - CLASSROOM_HZ) < 30
        # the classroom on a room camera is what makes the lesson LIVE
        live = live_server.manager.get(session.id)
        assert live is not None and live.summary()["classroom_tracks"] == 2
        await wait_for(lambda: coach.got("recording-state", state="recording") != [])
        # forwarded like a page's camera: a coach who comes later gets a
        # picture at once (its keyframe request reaches the device)
        late = live_server.participant(session.id, "coach")
        try:
            await late.join()
            await wait_for(lambda: late.tracks(role="camera", source="camera") != [], timeout=10)
            late_video = late.tracks(role="camera", source="camera")[0]
            await wait_for(lambda: late_video.frames > 5, timeout=10)
        finally:
            await late.close()

        deleted = await request("DELETE", camera.resource_url, token=camera.token)
        assert deleted.status == 200
        await wait_for(lambda: coach.got("participant-left") != [])
        await wait_for(lambda: coach.tracks(role="camera") == [] or not live.router.producers)
        assert all(p.role != Role.CAMERA for p in live.participants.values())
        again = await request("DELETE", camera.resource_url, token=camera.token)
        assert again.status == 404
        await live_server.manager.end_session(session.id)
    finally:
        await camera.close()
        await coach.close()

    (directory,) = list((live_server.config.recordings_dir / session.id).iterdir())
    manifest = read_manifest(directory)
    assert manifest["state"] == "finalized"
    recorded = {t["source"]: t for t in manifest["tracks"] if t.get("role") == "camera"}
    assert set(recorded) == {"camera", "mic"}
    assert recorded["camera"]["width"] == 320
    for track in recorded.values():
        # a file ffprobe reads, with every frame the Recorder took in
        assert ffprobe_frames(directory / track["file"]) == track["frames"] > 10
    roles = {p["role"] for p in manifest["participants"].values()}
    assert roles == {"camera", "coach"}
    # review plays the room camera with its mic, as it plays a teacher's
    with av.open(str(directory / manifest["review"]["classroom"])) as review:
        assert {s.type for s in review.streams} == {"video", "audio"}


def whisper_listeners(server: LiveServer, session_id: str) -> set[str]:
    """Participants with a consumer of any whisper (the Recorder too)."""
    live = server.manager.get(session_id)
    assert live is not None
    return {
        c.participant_id
        for p in live.router.producers.values()
        if p.info.source == "whisper"
        for c in p.consumers.values()
    }


async def test_a_whep_viewer_sees_the_classroom_and_never_a_whisper(
    live_server: LiveServer,
) -> None:
    session = await live_server.create_session()
    observer_invite = live_server.invite(session.id, "observer")
    viewer = whep(live_server, session.id, observer_invite)
    async with live_server.classroom(session.id, mic=True) as (teacher, coach):
        whisper = await coach.publish(ToneTrack(WHISPER_HZ), "whisper")
        await wait_for(lambda: coach.published(whisper))
        assert (await coach.call("whisper-start"))["ok"]
        try:
            # a spare audio m-line: a whisper would have somewhere to go
            posted = time.monotonic()
            reply = await viewer.start(receive=["video", "audio", "audio"])
            assert reply.status == 201, reply.body
            assert reply.headers["Location"].startswith(f"/whep/{session.id}/")
            (video,) = viewer.kind("video")
            await wait_for(lambda: video.frames > 10, timeout=15)
            assert video.first_frame_at is not None
            print(
                f"WHEP POST -> 201 in {reply.seconds * 1000:.0f} ms; first frame "
                f"{(video.first_frame_at - posted) * 1000:.0f} ms after the POST"
            )
            assert (video.width, video.height) == (320, 240)
            audio = viewer.kind("audio")
            await wait_for(lambda: any(a.tone_hz > 0 for a in audio), timeout=10)
            # the whisper is live: the teacher hears it all along
            heard = teacher.tracks(producerId=whisper)[0]
            await wait_for(lambda: heard.frames > 50 and heard.tone_hz > 0, timeout=10)
            assert abs(heard.tone_hz - WHISPER_HZ) < 30
            # the viewer hears the classroom, never the coach's voice
            assert [round(a.tone_hz) for a in audio if a.tone_hz] == [pytest.approx(440, abs=30)]
            viewer_id = next(
                p.id for p in live_server.manager.sessions[session.id].participants.values()
                if p.name == "Viewer (WHEP)"
            )
            assert viewer_id not in whisper_listeners(live_server, session.id)
            assert teacher.joined["participantId"] in whisper_listeners(live_server, session.id)
            assert all(a.tone_hz == 0 or abs(a.tone_hz - WHISPER_HZ) > 100 for a in audio)
        finally:
            assert (await coach.call("whisper-stop"))["ok"]
            await viewer.close()


@pytest.mark.slow
async def test_a_device_that_goes_away_without_delete_leaves_the_lesson(tmp_path: Path) -> None:
    """An encoder that never connects (its answer lost), and one that just
    closes its connection, are removed like a page whose media failed."""
    config = make_config(tmp_path, limits=Limits(negotiation_timeout_s=2.0))
    async with running_server(config) as server:
        session = await server.create_session()
        coach = server.participant(session.id, "coach")
        silent = whip(server, session.id, camera_token(session.id))
        closing = whip(server, session.id, camera_token(session.id))
        try:
            await coach.join()
            # never applies the answer: ICE never starts on its side
            offer = await silent.offer(send=[PatternVideoTrack()])
            lost = await request(
                "POST", server.url + silent.endpoint, token=silent.token, body=offer,
                content_type="application/sdp",
            )  # fmt: skip
            assert lost.status == 201
            assert (await closing.start(send=[PatternVideoTrack()])).status == 201
            await wait_for(lambda: len(coach.got("participant-joined")) == 2)
            await wait_for(lambda: closing.pc.connectionState == "connected", timeout=10)
            await closing.pc.close()
            await wait_for(lambda: len(coach.got("participant-left")) == 2, timeout=15)
            live = server.manager.get(session.id)
            assert live is not None and list(live.participants) == [coach.joined["participantId"]]
            assert not live.router.producers
            lost_url = server.url + lost.headers["Location"]
            for resource, device in ((lost_url, silent), (closing.resource_url, closing)):
                assert (await request("DELETE", resource, token=device.token)).status == 404
        finally:
            await silent.close()
            await closing.close()
            await coach.close()


@pytest.mark.slow
async def test_an_h264_encoder_like_obs_is_forwarded_and_recorded(live_server: LiveServer) -> None:
    """OBS's WHIP output offers H.264 only: the coach gets it without any
    transcoding, and the recording holds it."""
    session = await live_server.create_session()
    coach = live_server.participant(session.id, "coach")
    camera = whip(live_server, session.id, camera_token(session.id))
    try:
        await coach.join()
        reply = await camera.start(send=[PatternVideoTrack()], video_codec="video/H264")
        assert reply.status == 201, reply.body
        assert "H264/90000" in reply.body and "VP8/90000" not in reply.body
        await wait_for(lambda: coach.tracks(role="camera") != [], timeout=10)
        (video,) = coach.tracks(role="camera")
        assert video.info["codec"].lower() == "video/h264"
        await wait_for(lambda: video.frames > 10, timeout=15)
        assert (video.width, video.height) == (320, 240)
        await live_server.manager.end_session(session.id)
    finally:
        await camera.close()
        await coach.close()
    (directory,) = list((live_server.config.recordings_dir / session.id).iterdir())
    (track,) = [t for t in read_manifest(directory)["tracks"] if t["source"] == "camera"]
    assert ffprobe_frames(directory / track["file"]) == track["frames"] > 10


@pytest.mark.slow
async def test_a_lossy_whip_uplink_is_repaired_by_nack(live_server: LiveServer) -> None:
    """10 % of the device's video packets never arrive: the server asks the
    device again (NACK, as for a page's camera), the device retransmits,
    and the coach keeps decoding with (almost) none of the loss left."""
    session = await live_server.create_session(recording=False)
    coach = live_server.participant(session.id, "coach")
    camera = whip(live_server, session.id, camera_token(session.id))
    try:
        await coach.join()
        reply = await camera.start(send=[PatternVideoTrack()])
        assert reply.status == 201
        match = re.search(r"a=rtpmap:(\d+) VP8/90000", reply.body)
        assert match is not None
        vp8 = int(match.group(1))
        await wait_for(lambda: coach.tracks(role="camera") != [], timeout=10)
        video = coach.tracks(role="camera")[0]
        await wait_for(lambda: video.frames > 30, timeout=15)

        # the device's uplink loses every 10th first transmission of video
        transport = camera.pc.getTransceivers()[0].sender.transport
        send = transport._send_rtp
        counts = {"sent": 0, "dropped": 0, "resent": 0}
        seen: set[int] = set()

        async def lossy(data: bytes) -> None:
            if len(data) > 12 and not 192 <= data[1] <= 223 and data[1] & 0x7F == vp8:
                seq = int.from_bytes(data[2:4], "big")
                if seq in seen:
                    counts["resent"] += 1
                else:
                    seen.add(seq)
                    counts["sent"] += 1
                    if counts["sent"] % 10 == 0:
                        counts["dropped"] += 1
                        return
            await send(data)

        transport._send_rtp = lossy
        before = (await inbound_stats(coach.pc))["video"]
        frames = video.frames
        # the picture goes on: 10 s of video (300 frames) still decode
        await wait_for(lambda: video.frames >= frames + 300, timeout=40)
        after = (await inbound_stats(coach.pc))["video"]
        transport._send_rtp = send
        live = live_server.manager.get(session.id)
        assert live is not None
        (producer,) = live.router.producers.values()
        lost_at_coach = after["packetsLost"] - before["packetsLost"]
        assert counts["dropped"] >= 10
        assert producer.nacks_sent > 0  # the server asked the device again ...
        assert counts["resent"] >= counts["dropped"] / 2  # ... and it sent them again
        assert lost_at_coach < counts["dropped"] / 2, (lost_at_coach, counts)
    finally:
        await camera.close()
        await coach.close()
