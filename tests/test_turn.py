"""Time-limited TURN credentials per join (TURN REST scheme, coturn's
``use-auth-secret``) and the ICE transport policy handed to clients."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from server.core.config import IceServer
from server.core.tokens import verify_invite
from server.core.turn import turn_rest_credential
from testkit.server import TEST_SECRET, make_config, running_server

TURN_SECRET = "north-wing-secret"
TURN_URLS = ("turn:turn.school.example:3478?transport=udp", "turns:turn.school.example:443")


def test_credential_is_the_turn_rest_hmac() -> None:
    # computed independently: printf '%s' 1700000000:i-abc |
    #   openssl dgst -sha1 -hmac north-wing-secret -binary | base64
    assert turn_rest_credential(TURN_SECRET, 1700000000, "i-abc") == (
        "1700000000:i-abc",
        "TZ49UefwuaKLe3+t16H2TnK0a2g=",
    )


async def test_each_join_gets_a_credential_that_expires_with_its_invite(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    static = IceServer(urls=("stun:stun.school.example:3478",))
    config = make_config(
        tmp_path,
        ice_servers=(static,),
        turn_secret=TURN_SECRET,
        turn_urls=TURN_URLS,
        ice_transport_policy="relay",
    )
    async with running_server(config) as server:
        record = await server.create_session()
        teacher = server.participant(record.id, "teacher")
        coach = server.participant(record.id, "coach")
        try:
            replies = [await teacher.join(), await coach.join()]
        finally:
            await teacher.close()
            await coach.close()
    usernames = []
    for p, reply in zip((teacher, coach), replies, strict=True):
        claims = verify_invite(TEST_SECRET, p.token)
        assert reply["iceTransportPolicy"] == "relay"
        assert reply["iceServers"][0] == {"urls": ["stun:stun.school.example:3478"]}
        turn = reply["iceServers"][1]
        assert turn["urls"] == list(TURN_URLS)
        assert turn["username"] == f"{claims.expires_at}:{claims.invite_id}"
        assert (turn["username"], turn["credential"]) == turn_rest_credential(
            TURN_SECRET, claims.expires_at, claims.invite_id
        )
        usernames.append(turn["username"])
        assert TURN_SECRET not in str(reply)
    assert usernames[0] != usernames[1]  # one credential per invite
    assert TURN_SECRET not in caplog.text


async def test_without_a_turn_secret_clients_get_the_static_servers_and_policy_all(
    tmp_path: Path,
) -> None:
    static = IceServer(urls=("turn:turn.school.example:3478",), username="u", credential="c")
    async with running_server(make_config(tmp_path, ice_servers=(static,))) as server:
        record = await server.create_session()
        coach = server.participant(record.id, "coach")
        try:
            reply = await coach.join()
        finally:
            await coach.close()
    assert reply["iceServers"] == [
        {"urls": ["turn:turn.school.example:3478"], "username": "u", "credential": "c"}
    ]
    assert reply["iceTransportPolicy"] == "all"
