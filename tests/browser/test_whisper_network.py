"""A whisper on a bad school network: 3 % loss and 50 ms of jitter on the
way to the teacher's tablet (testkit/netns.py, the userspace delay box).

* The teacher's Chromium still hears the coach, and conceals what was lost
  (its own jitter buffer and Opus decoder do, with in-band FEC negotiated:
  ``useinbandfec=1`` in the server's offers to both the teacher and the
  coach, and in the teacher's answer).
* The server never holds a whisper packet back: every packet the coach sent
  while holding push-to-talk went out to the teacher as it arrived (the
  teacher's consumer sent exactly what the whisper producer let through),
  so jitter is absorbed once, in the teacher's browser, not twice.

How long the whisper takes is printed by scripts/bench_network.py, not
asserted here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from server.media.offer_sdp import codec_fmtp
from testkit.browser import (
    CHROMIUM,
    KEEP_PEER_CONNECTIONS,
    SILENCE,
    launched_chromium,
    page_errors,
    teacher_gone_live,
)
from testkit.netns import Netlab
from testkit.peers import ToneTrack, wait_for
from testkit.server import make_config, running_server

pytestmark = pytest.mark.browser

#: the teacher's inbound-rtp stats of the whisper it plays, and its SDP
WHISPER_STATS = """async () => {
    const whisper = sidecoach.remoteTracks.find((t) => t.source === "whisper");
    for (const pc of window.__pcs) {
        const t = pc.getTransceivers().find((t) => whisper && t.mid === whisper.mid);
        if (!t) continue;
        // no inbound-rtp before the first packet (push-to-talk not held yet)
        const out = {
            packetsReceived: 0, packetsLost: 0, concealedSamples: 0, fecPacketsReceived: 0,
            offer: pc.remoteDescription.sdp, answer: pc.localDescription.sdp,
        };
        for (const s of (await t.receiver.getStats()).values()) {
            if (s.type !== "inbound-rtp") continue;
            for (const key of ["packetsReceived", "packetsLost", "concealedSamples",
                               "fecPacketsReceived"]) out[key] = s[key] ?? 0;
        }
        return out;
    }
    return null;
}"""


@pytest.mark.slow
async def test_whisper_under_loss_and_jitter_is_heard_and_never_held_by_the_server(
    netlab: Netlab, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    classroom = netlab.namespace("classroom")
    link = netlab.link(None, classroom, subnet=12)
    config = make_config(tmp_path, host=link.a_ip, ice_listen_ips=(link.a_ip,))
    async with running_server(config) as server:
        session = await server.create_session(recording=False)
        origin = server.url
        flags = [f"--unsafely-treat-insecure-origin-as-secure={origin}"]
        coach = server.participant(session.id, "coach")
        coach.ice_ips = (link.a_ip,)  # on the server's side: a clean path
        async with launched_chromium(classroom.wrapper(str(CHROMIUM), tmp_path), flags) as tablet:
            teacher = await teacher_gone_live(
                tablet, origin, server.invite(session.id, "teacher"), init=KEEP_PEER_CONNECTIONS
            )
            try:
                await coach.join()
                whisper = await coach.publish(ToneTrack(), "whisper")
                await wait_for(lambda: coach.published(whisper), timeout=15)
                await teacher.wait(
                    "sidecoach.remoteTracks.some(t => t.source === 'whisper')", timeout=20
                )
                live = server.manager.get(session.id)
                assert live is not None
                producer = live.router.producers[whisper]
                (to_teacher,) = producer.consumers.values()

                link.shape("down", loss_pct=3, delay_ms=50, jitter_ms=50)
                before = await teacher.page.evaluate(WHISPER_STATS)
                received0, gated0 = producer.packets_received, producer.packets_gated
                out0 = to_teacher.packets_sent + to_teacher.packets_dropped
                assert (await coach.call("whisper-start"))["ok"]
                await teacher.wait("sidecoach.whispering.length === 1", timeout=10)
                peak = await teacher.audio_peak("audio[data-source=whisper]", seconds=6.0)
                assert (await coach.call("whisper-stop"))["ok"]
                await teacher.wait("sidecoach.whispering.length === 0", timeout=10)
                await asyncio.sleep(0.5)  # the last packets through the box
                after = await teacher.page.evaluate(WHISPER_STATS)
                # gated packets (push-to-talk released) are not "received"
                through = producer.packets_received - received0
                gated = producer.packets_gated - gated0
                out = to_teacher.packets_sent + to_teacher.packets_dropped - out0
                dropped = link.dropped("down")
                assert page_errors(teacher) == []
            finally:
                link.shape("down")
                await coach.close()

    # the teacher heard the coach through the loss and the jitter
    assert peak > SILENCE, f"the teacher hears no whisper (peak {peak})"
    assert before is not None and after is not None
    assert after["packetsReceived"] - before["packetsReceived"] > 100
    # the link lost packets, and the teacher's browser concealed the gaps
    # (its packetsLost is no witness: with jitter's reordering it went to -1)
    assert dropped > 0
    assert after["concealedSamples"] > before["concealedSamples"]
    # the server forwarded every whisper packet it let through, at once
    assert through > 100 and gated > 0  # before and after the button
    assert out == through, (out, through)
    # Opus in-band FEC asked for on every leg: the server's offers to the
    # teacher (what it receives) and to the coach (what it sends), and the
    # teacher's answer
    for sdp in (after["offer"], after["answer"], coach.pc.remoteDescription.sdp):
        opus = codec_fmtp(sdp, "audio", "opus")
        assert opus and all(p.get("useinbandfec") == "1" for p in opus), opus
