"""WHIP/WHEP conformance (RFC 9725) against a real server: status codes,
``Location``, ``ETag``, ``Link``, CORS, ``PATCH`` trickle and restart,
``DELETE``, tokens of the wrong kind, revoked, expired; and every refusal
changes nothing (no participant, no LIVE lesson)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCSessionDescription

from server.core.config import IceServer, Limits
from server.core.roles import SessionState
from server.core.tokens import issue_admin_token, issue_camera_token
from server.media.offer_sdp import offered_simulcast
from testkit.peers import PatternVideoTrack, ToneTrack, wait_for
from testkit.server import TEST_SECRET, LiveServer, make_config, running_server
from testkit.whip import HttpPeer, HttpReply, request

pytestmark = pytest.mark.integration

SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"


def camera_token(session_id: str, **kw: object) -> str:
    return issue_camera_token(TEST_SECRET, session_id, ttl_s=3600, **kw)  # type: ignore[arg-type]


def admin() -> str:
    return issue_admin_token(TEST_SECRET, ttl_s=600)


async def an_offer(send: bool = True) -> str:
    """A real aiortc offer (never connected): a camera, or a viewer's."""
    peer = HttpPeer("", "", "")
    try:
        if send:
            return await peer.offer(send=[PatternVideoTrack(), ToneTrack()])
        return await peer.offer(receive=["video", "audio"])
    finally:
        await peer.close()


def error_code(reply: HttpReply) -> str:
    return str(reply.json()["error"]["code"])


async def post(server: LiveServer, path: str, token: str | None, body: str, **kw: str) -> HttpReply:
    return await request(
        "POST", server.url + path, token=token, body=body, content_type=kw.get("ctype", SDP)
    )


async def test_a_post_answers_201_with_location_etag_links_and_cors(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        ice_servers=(IceServer(urls=("stun:stun.school.example:3478",)),),
        turn_secret="turn-secret-" + "y" * 20,
        turn_urls=("turn:turn.school.example:3478?transport=udp",),
    )
    async with running_server(config) as server:
        session = await server.create_session()
        path = f"/whip/{session.id}"
        preflight = await request(
            "OPTIONS",
            server.url + path,
            headers={
                "Origin": "https://encoder.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "*"
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        assert preflight.headers["Accept-Post"] == SDP

        camera = HttpPeer(server.url, path, camera_token(session.id, token_id="c-room12"))
        try:
            reply = await camera.start(send=[PatternVideoTrack(), ToneTrack()])
            assert reply.status == 201, reply.body
            assert reply.body.startswith("v=0") and "a=candidate:" in reply.body
            location = reply.headers["Location"]
            assert location.startswith(f"{path}/") and len(location) > len(path) + 8
            etag = reply.headers["ETag"]
            assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
            exposed = reply.headers["Access-Control-Expose-Headers"]
            for name in ("Location", "ETag", "Link"):
                assert name in exposed
            assert reply.headers["Access-Control-Allow-Origin"] == "*"
            links = reply.headers.getall("Link")
            assert '<stun:stun.school.example:3478>; rel="ice-server"' in links
            (turn,) = [link for link in links if link.startswith("<turn:")]
            # the TURN credentials of a join: expiring with the token, for this device
            assert 'username="' in turn and ':c-room12"' in turn
            assert 'credential="' in turn and 'credential-type="password"' in turn
            await wait_for(lambda: camera.pc.connectionState == "connected", timeout=10)

            # PATCH: trickle is taken, a stale ETag is refused, a restart cannot be done
            resource = server.url + location
            candidate = "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
            ufrag = camera.pc.localDescription.sdp.split("a=ice-ufrag:")[1].split()[0]
            frag = f"a=ice-ufrag:{ufrag}\r\n"
            trickled = await request(
                "PATCH", resource, token=camera.token, body=frag + candidate,
                content_type=SDPFRAG, headers={"If-Match": etag},
            )  # fmt: skip
            assert trickled.status == 204, trickled.body
            stale = await request(
                "PATCH", resource, token=camera.token, body=candidate,
                content_type=SDPFRAG, headers={"If-Match": '"not-this-one"'},
            )  # fmt: skip
            assert stale.status == 412 and error_code(stale) == "precondition_failed"
            restart = await request(
                "PATCH", resource, token=camera.token,
                body="a=ice-ufrag:newf\r\na=ice-pwd:newpasswordnewpassword12\r\n",
                content_type=SDPFRAG, headers={"If-Match": "*"},
            )  # fmt: skip
            assert restart.status == 422 and error_code(restart) == "ice_restart_unsupported"
            wrong_type = await request(
                "PATCH", resource, token=camera.token, body=candidate, content_type=SDP
            )
            assert wrong_type.status == 415
            other = await request("PATCH", resource, token=camera_token(session.id), body="",
                                  content_type=SDPFRAG)  # fmt: skip
            assert other.status == 403  # another device's token cannot touch this stream
            # still publishing after all that
            assert camera.pc.connectionState == "connected"
            options = await request("OPTIONS", resource)
            assert options.status == 204
            assert {"PATCH", "DELETE"} <= set(
                options.headers["Access-Control-Allow-Methods"].replace(" ", "").split(",")
            )
            get = await request("GET", resource, token=camera.token)
            assert (get.status, error_code(get)) == (405, "method_not_allowed")
            assert "DELETE" in get.headers["Allow"]

            assert (await request("DELETE", resource, token=camera.token)).status == 200
            for method in ("DELETE", "PATCH"):
                gone = await request(method, resource, token=camera.token, content_type=SDPFRAG)
                assert gone.status == 404, method
        finally:
            await camera.close()


async def test_refusals_name_the_problem_and_change_nothing(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    path = f"/whip/{session.id}"
    token = camera_token(session.id)
    offer = await an_offer()
    limit = live_server.config.limits.max_sdp_bytes

    async def refused(status: int, code: str, reply: HttpReply) -> None:
        assert (reply.status, error_code(reply)) == (status, code), reply.body
        assert reply.headers["Access-Control-Allow-Origin"] == "*"  # a browser can read why

    wrong_type = await post(live_server, path, token, offer, ctype="text/plain")
    await refused(415, "unsupported_media_type", wrong_type)
    get = await request("GET", live_server.url + path, token=token)
    await refused(405, "method_not_allowed", get)
    assert "POST" in get.headers["Allow"]
    await refused(400, "invalid_message", await post(live_server, path, token, "hello, WHIP"))
    no_ice = "\r\n".join(
        line for line in offer.split("\r\n") if not line.startswith(("a=ice-ufrag", "a=ice-pwd"))
    )
    await refused(422, "unacceptable_offer", await post(live_server, path, token, no_ice))
    await refused(
        422, "unacceptable_offer", await post(live_server, path, token, await an_offer(False))
    )
    huge = offer + "a=x-padding:" + "p" * limit + "\r\n"
    await refused(413, "message_too_large", await post(live_server, path, token, huge))
    await refused(401, "unauthorized", await post(live_server, path, None, offer))
    await refused(401, "unauthorized", await post(live_server, path, "not.a.token", offer))
    expired = issue_camera_token(TEST_SECRET, session.id, ttl_s=60, now=time.time() - 3600)
    await refused(401, "token_expired", await post(live_server, path, expired, offer))
    # a coach's invite (or an admin token) is not a camera token
    coach_invite = live_server.invite(session.id, "coach")
    await refused(403, "wrong_token_kind", await post(live_server, path, coach_invite, offer))
    await refused(403, "wrong_token_kind", await post(live_server, path, admin(), offer))
    other = await live_server.create_session()
    elsewhere = camera_token(other.id)
    await refused(403, "wrong_session", await post(live_server, path, elsewhere, offer))
    missing = "/whip/s-doesnotexist"
    await refused(
        404, "session_not_found",
        await post(live_server, missing, camera_token("s-doesnotexist"), offer),
    )  # fmt: skip
    unknown = await request("DELETE", live_server.url + path + "/nope", token=token)
    await refused(404, "not_found", unknown)

    # nothing changed: nobody joined, the lesson never went live
    assert live_server.manager.get(session.id) is None
    record = await live_server.store.get(session.id)
    assert record.state == SessionState.SCHEDULED

    # a coach in the lesson sees no one come and go on a refused offer
    coach = live_server.participant(session.id, "coach")
    try:
        await coach.join()
        await refused(422, "unacceptable_offer", await post(live_server, path, token, no_ice))
        await refused(400, "invalid_message", await post(live_server, path, token, "v=0\r\nm=x"))
        codecs = ("VP8/", "H264/", "opus/", "PCMU/", "PCMA/")
        no_codec = offer
        for codec in codecs:
            no_codec = no_codec.replace(codec, "X" + codec)
        await refused(422, "unacceptable_offer", await post(live_server, path, token, no_codec))
        live = live_server.manager.get(session.id)
        assert live is not None and list(live.participants) == [coach.joined["participantId"]]
        assert coach.got("participant-joined") == [] and coach.got("participant-left") == []
    finally:
        await coach.close()

    await live_server.manager.end_session(session.id)
    await refused(409, "session_ended", await post(live_server, path, token, offer))


async def test_whep_takes_an_observer_invite_only(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    path = f"/whep/{session.id}"
    offer = await an_offer(send=False)
    camera = await post(live_server, path, camera_token(session.id), offer)
    assert (camera.status, error_code(camera)) == (403, "wrong_token_kind")
    coach = await post(live_server, path, live_server.invite(session.id, "coach"), offer)
    assert (coach.status, error_code(coach)) == (403, "forbidden")
    publishing = await post(
        live_server, path, live_server.invite(session.id, "observer"), await an_offer()
    )
    assert (publishing.status, error_code(publishing)) == (422, "unacceptable_offer")
    assert live_server.manager.get(session.id) is None


async def test_a_revoked_camera_token_is_cut_off_and_stays_revoked_after_a_restart(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path)
    async with running_server(config) as server:
        session = await server.create_session()
        minted = await request(
            "POST", f"{server.url}/api/sessions/{session.id}/camera-tokens", token=admin(),
            body='{"name": "Room 12 camera"}', content_type="application/json",
        )  # fmt: skip
        assert minted.status == 201, minted.body
        token, token_id = minted.json()["token"], minted.json()["token_id"]
        assert minted.json()["whip_url"].endswith(f"/whip/{session.id}")
        # the lesson's teacher mints one too (its invite's token); a coach cannot
        tokens_url = f"{server.url}/api/sessions/{session.id}/camera-tokens"
        by_teacher = await request("POST", tokens_url, token=server.invite(session.id, "teacher"))
        assert by_teacher.status == 201 and by_teacher.json()["token"]
        by_coach = await request("POST", tokens_url, token=server.invite(session.id, "coach"))
        assert (by_coach.status, error_code(by_coach)) == (403, "forbidden")
        other = await server.create_session()
        elsewhere = await request("POST", tokens_url, token=server.invite(other.id, "teacher"))
        assert (elsewhere.status, error_code(elsewhere)) == (403, "wrong_session")
        assert (await request("POST", tokens_url)).status == 401

        camera = HttpPeer(server.url, f"/whip/{session.id}", token)
        coach = server.participant(session.id, "coach")
        try:
            await coach.join()
            assert (await camera.start(send=[PatternVideoTrack()])).status == 201
            await wait_for(lambda: coach.got("participant-joined") != [])
            assert coach.got("participant-joined")[0]["name"] == "Room 12 camera (WHIP)"
            revoked = await request(
                "DELETE",
                f"{server.url}/api/sessions/{session.id}/camera-tokens/{token_id}",
                token=admin(),
            )
            assert revoked.status == 200 and revoked.json()["removed"] == 1
            await wait_for(lambda: coach.got("participant-left") != [])
            gone = await request("DELETE", camera.resource_url, token=token)
            assert gone.status == 404
        finally:
            await camera.close()
            await coach.close()
        again = await post(server, f"/whip/{session.id}", token, await an_offer())
        assert (again.status, error_code(again)) == (403, "token_revoked")

    async with running_server(config) as server:
        after = await post(server, f"/whip/{session.id}", token, await an_offer())
        assert (after.status, error_code(after)) == (403, "token_revoked")


async def test_a_reconnecting_encoder_replaces_its_stream_and_resources_are_limited(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, limits=Limits(max_whip_resources_per_session=2))
    async with running_server(config) as server:
        session = await server.create_session()
        path = f"/whip/{session.id}"
        first_token, second_token = camera_token(session.id), camera_token(session.id)
        first = await post(server, path, first_token, await an_offer())
        assert first.status == 201, first.body
        # the same device again (OBS restarted): its old stream goes
        again = await post(server, path, first_token, await an_offer())
        assert again.status == 201 and again.headers["Location"] != first.headers["Location"]
        old = await request("DELETE", server.url + first.headers["Location"], token=first_token)
        assert old.status == 404
        live = server.manager.get(session.id)
        assert live is not None and len(live.participants) == 1
        second = await post(server, path, second_token, await an_offer())
        assert second.status == 201
        third = await post(server, path, camera_token(session.id), await an_offer())
        assert (third.status, error_code(third)) == (429, "limit_reached")
        assert len(live.participants) == 2
        # at the limit, a device reconnecting still gets back in (in place of itself)
        back = await post(server, path, second_token, await an_offer())
        assert back.status == 201, back.body
        assert len(live.participants) == 2


async def test_trickled_candidates_reach_the_server(live_server: LiveServer) -> None:
    """A client that trickles (offers with no candidates, PATCHes them
    after): the server takes each one, and the stream connects."""
    session = await live_server.create_session()
    camera = HttpPeer(live_server.url, f"/whip/{session.id}", camera_token(session.id))
    try:
        full = await camera.offer(send=[PatternVideoTrack()])
        lines = full.split("\r\n")
        candidates = [line for line in lines if line.startswith("a=candidate:")]
        assert candidates
        bare = "\r\n".join(
            line for line in lines if not line.startswith(("a=candidate:", "a=end-of-candidates"))
        )
        reply = await post(live_server, f"/whip/{session.id}", camera.token, bare)
        assert reply.status == 201, reply.body
        live = live_server.manager.get(session.id)
        assert live is not None
        (device,) = live.participants.values()
        assert device_candidates(device.peer.pc) == []
        ufrag = next(line for line in lines if line.startswith("a=ice-ufrag:"))
        frag = "\r\n".join([ufrag, *candidates, "a=end-of-candidates", ""])
        trickled = await request(
            "PATCH", live_server.url + reply.headers["Location"], token=camera.token, body=frag,
            content_type=SDPFRAG, headers={"If-Match": reply.headers["ETag"]},
        )  # fmt: skip
        assert trickled.status == 204, trickled.body
        # (the client has not started its checks: what the server knows, it was sent)
        ports = {int(c.split()[5]) for c in candidates}
        assert ports <= {c.port for c in device_candidates(device.peer.pc)}
        await camera.pc.setRemoteDescription(RTCSessionDescription(reply.body, "answer"))
        await wait_for(lambda: camera.pc.connectionState == "connected", timeout=10)
        await wait_for(lambda: device.peer.pc.connectionState == "connected", timeout=10)
    finally:
        await camera.close()


def device_candidates(pc: Any) -> list[Any]:
    """The remote candidates the server's side of a WHIP peer knows."""
    transport = pc.getTransceivers()[0].receiver.transport.transport
    return list(transport.getRemoteCandidates())


def test_a_clients_simulcast_layers_are_ranked_by_their_names() -> None:
    """Layers lowest resolution first, whatever order the client offers
    them in; unknown names keep the offer's order; paused ones are not taken."""

    def offer(spec: str, rids: list[str]) -> str:
        lines = ["v=0", "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:0"]
        lines += [f"a=rid:{r} send" for r in rids] + [f"a=simulcast:send {spec}"]
        return "\r\n".join(lines) + "\r\n"

    assert offered_simulcast(offer("f;h;q", ["f", "h", "q"])) == {"0": ("q", "h", "f")}
    assert offered_simulcast(offer("h;m;l", ["h", "m", "l"])) == {"0": ("l", "m", "h")}
    assert offered_simulcast(offer("2;0;1", ["2", "0", "1"])) == {"0": ("2", "0", "1")}
    assert offered_simulcast(offer("l;~h", ["l", "h"])) == {}
    assert offered_simulcast(offer("l;x", ["l"])) == {}  # "x" has no a=rid line
