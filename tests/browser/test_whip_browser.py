"""WHIP and WHEP from a browser no page of ours is in: Chromium's own
WebRTC stack, from another origin (CORS), publishes its camera over WHIP;
a coach's page sees it, and a WHEP player in the browser plays it."""

from __future__ import annotations

from typing import Any

import pytest

from server.core.tokens import issue_camera_token
from testkit.browser import new_tab
from testkit.peers import wait_for
from testkit.server import TEST_SECRET, LiveServer

#: a WHIP/WHEP client in plain browser JS (what an npm client does):
#: offer, wait for ICE gathering, POST, apply the answer
CLIENT = """(async () => {
    const pc = new RTCPeerConnection();
    (window.__pcs = window.__pcs || []).push(pc);
    if (arg.publish) {
        const stream = await navigator.mediaDevices.getUserMedia({video: true, audio: true});
        // simulcast, lowest layer first (what a browser falls back to, alone,
        // if the answer does not take simulcast)
        const [video] = stream.getVideoTracks(), [audio] = stream.getAudioTracks();
        pc.addTransceiver(video, {direction: "sendonly", sendEncodings: [
            {rid: "l", scaleResolutionDownBy: 4},
            {rid: "m", scaleResolutionDownBy: 2},
            {rid: "h"},
        ]});
        pc.addTransceiver(audio, {direction: "sendonly"});
    } else {
        pc.addTransceiver("video", {direction: "recvonly"});
        pc.addTransceiver("audio", {direction: "recvonly"});
        const video = document.createElement("video");
        video.autoplay = true; video.muted = true; video.id = "whep";
        document.body.append(video);
        pc.ontrack = (e) => {
            if (e.track.kind === "video") video.srcObject = new MediaStream([e.track]);
        };
    }
    await pc.setLocalDescription();
    await new Promise((resolve) => {
        if (pc.iceGatheringState === "complete") return resolve();
        pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && resolve();
    });
    const resp = await fetch(arg.url, {
        method: "POST",
        headers: {"Content-Type": "application/sdp", "Authorization": "Bearer " + arg.token},
        body: pc.localDescription.sdp,
    });
    const body = await resp.text();
    if (resp.status === 201) await pc.setRemoteDescription({type: "answer", sdp: body});
    return {status: resp.status, body, offer: pc.localDescription.sdp,
            location: resp.headers.get("Location"),
            etag: resp.headers.get("ETag")};
})()"""


@pytest.mark.slow
async def test_a_browser_publishes_over_whip_and_plays_over_whep(
    browser: Any, live_server: LiveServer
) -> None:
    session = await live_server.create_session()
    coach = live_server.participant(session.id, "coach")
    # another origin than the server's (localhost, not 127.0.0.1), as an
    # encoder's web UI or a player would be: every request is cross-origin
    elsewhere = live_server.url.replace("127.0.0.1", "localhost") + "/healthz"
    tab = await new_tab(browser, elsewhere, "whip client")
    try:
        await coach.join()
        token = issue_camera_token(TEST_SECRET, session.id, ttl_s=600)
        whip_url = f"{live_server.url}/whip/{session.id}"
        published = await tab.js(CLIENT, {"publish": True, "url": whip_url, "token": token})
        assert published["status"] == 201, published["body"]
        assert "a=simulcast:send l;m;h" in published["offer"]
        assert "a=simulcast:recv l;m;h" in published["body"]
        # CORS exposed what a WHIP client needs
        assert published["location"].startswith(f"/whip/{session.id}/")
        assert published["etag"]
        await wait_for(lambda: len(coach.tracks(role="camera")) == 2, timeout=20)
        video = coach.tracks(role="camera", source="camera")[0]
        await wait_for(lambda: video.frames > 10, timeout=20)
        live = live_server.manager.get(session.id)
        assert live is not None
        (camera,) = [p for p in live.router.producers.values() if p.info.source == "camera"]
        # the coach is not left with the smallest layer
        # several layers arrive (Chromium sends two of three at 640x480)
        assert [layer.rid for layer in camera.layers] == ["l", "m", "h"]
        await wait_for(lambda: sum(1 for x in camera.layers if x.packets) >= 2, timeout=10)
        await wait_for(lambda: video.width >= 320, timeout=10)

        observer = live_server.invite(session.id, "observer")
        whep_url = f"{live_server.url}/whep/{session.id}"
        viewed = await tab.js(CLIENT, {"publish": False, "url": whep_url, "token": observer})
        assert viewed["status"] == 201, viewed["body"]
        await tab.wait(
            "document.getElementById('whep').videoWidth > 0 "
            "&& document.getElementById('whep').currentTime > 0.5",
            timeout=20,
        )

        deleted = await tab.js(
            "fetch(arg.url, {method: 'DELETE', headers: {Authorization: 'Bearer ' + arg.token}})"
            ".then((r) => r.status)",
            {"url": live_server.url + published["location"], "token": token},
        )
        assert deleted == 200
        await wait_for(lambda: coach.got("participant-left") != [], timeout=10)
        assert tab.errors == []
    finally:
        await tab.page.context.close()
        await coach.close()
