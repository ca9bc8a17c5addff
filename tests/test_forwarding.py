"""A teacher publishes; coaches and an observer see and hear it, forwarded
packet by packet by the real server on loopback."""

from __future__ import annotations

import pytest

from testkit.peers import PatternVideoTrack, ToneTrack, wait_for
from testkit.server import LiveServer

pytestmark = pytest.mark.integration


async def test_coaches_and_observer_decode_the_classroom(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    teacher = live_server.participant(session.id, "teacher")
    viewers = [live_server.participant(session.id, role) for role in ("coach", "coach", "observer")]
    try:
        await teacher.join()
        camera = await teacher.publish(PatternVideoTrack(), "camera")
        mic = await teacher.publish(ToneTrack(440), "mic")
        await wait_for(lambda: teacher.published(camera) and teacher.published(mic))
        for v in viewers:
            await v.join()
        for v in viewers:
            await wait_for(lambda v=v: len(v.received) == 2)
            video = v.tracks(producerId=camera)[0]
            audio = v.tracks(producerId=mic)[0]
            await wait_for(
                lambda v=video, a=audio: v.frames >= 10 and a.frames >= 25,  # type: ignore[misc]
                timeout=15,
            )
            assert video.width == 320
            assert audio.peak_level > 0.1
            assert abs(audio.tone_hz - 440) < 30
        # nothing came back to the teacher: it publishes, it does not consume itself
        assert teacher.received == {}
    finally:
        for p in (teacher, *viewers):
            await p.close()
