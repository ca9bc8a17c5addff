"""The pre-lesson check's server side (server/live/check.py,
server/signaling/routes/check.py): a token-less socket gets test
connections whose media the server counts, TURN paths with a credential of
their own, and nothing of a lesson; every count is bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import socketio
from aiortc import RTCPeerConnection, RTCSessionDescription

from server.core.config import Config, IceServer
from server.core.turn import turn_rest_credential
from server.live import check as check_mod
from server.live.check import Checks, check_paths, relay_transport
from server.media.aiortc_adapter import new_peer_connection, restrict_ice
from server.media.policy import Source
from testkit.peers import LOOPBACK, ToneTrack, wait_for
from testkit.server import LiveServer, make_config

TURN_SECRET = "a-turn-secret-for-the-check-test-" + "s" * 16


class CheckClient:
    """A page doing a check: a socket, and one aiortc peer per probe."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.tracks: dict[str, Any] = {}
        self.events: list[tuple[str, Any]] = []
        self.sio.on("check-offer", self._offer)
        self.sio.on("check-ended", lambda d: self.events.append(("check-ended", d)))

    async def call(self, event: str, data: Any = None) -> dict[str, Any]:
        reply: dict[str, Any] = await self.sio.call(event, data or {}, timeout=10)
        return reply

    async def connect(self) -> None:
        await self.sio.connect(self.url, transports=["websocket"])

    async def probe(self, source: str = "mic") -> str:
        reply = await self.call("check-probe", {"source": source})
        assert reply["ok"], reply
        probe_id = str(reply["probeId"])
        self.pcs[probe_id] = new_peer_connection()
        self.tracks[probe_id] = ToneTrack()
        return probe_id

    async def _offer(self, data: dict[str, Any]) -> None:
        await asyncio.sleep(0.05)  # the probe's reply (and its pc) first
        pc = self.pcs[data["probeId"]]
        await pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "offer"))
        for t in pc.getTransceivers():
            if t.mid in data["publish"]:
                t.sender.replaceTrack(self.tracks[data["probeId"]])
                t.direction = "sendonly"
        answer = await pc.createAnswer()
        restrict_ice(pc, LOOPBACK, None)
        await pc.setLocalDescription(answer)
        reply = await self.call(
            "check-answer",
            {
                "probeId": data["probeId"],
                "negotiationId": data["negotiationId"],
                "sdp": pc.localDescription.sdp,
            },
        )
        self.events.append(("answered", reply))

    async def close(self) -> None:
        for pc in self.pcs.values():
            await pc.close()
        if self.sio.connected:
            await self.sio.disconnect()


async def test_a_check_receives_media_and_reaches_no_lesson(live_server: LiveServer) -> None:
    client = CheckClient(live_server.url)
    try:
        await client.connect()
        # nothing of a lesson without a join
        refused = await client.call("publish", {"source": "camera", "kind": "video"})
        assert refused["error"]["code"] == "unauthorized"
        started = await client.call("check-start")
        assert started["ok"], started
        assert [p["id"] for p in started["paths"]] == ["direct"]  # no relay configured
        assert started["paths"][0]["iceTransportPolicy"] == "all"
        probe = await client.probe("mic")
        stats: dict[str, Any] = {}

        async def receiving() -> bool:
            nonlocal stats
            stats = await client.call("check-stats", {"probeId": probe})
            return bool(stats["state"] == "receiving" and stats["bytes"] > 0)

        for _ in range(200):  # bounded: a few seconds on loopback
            if await receiving():
                break
            await asyncio.sleep(0.05)
        assert stats["state"] == "receiving", stats
        assert stats["packets"] > 0
        # the socket holds no seat in any session
        assert all(not s.participants for s in live_server.manager.sessions.values())
        again = await client.call("check-start")
        assert again["error"]["code"] == "conflict"
        stopped = await client.call("check-stop")
        assert stopped["ok"]
        after = await client.call("check-stats", {"probeId": probe})
        assert after["error"]["code"] == "conflict"
    finally:
        await client.close()


async def test_a_checking_socket_is_not_closed_as_unauthenticated(tmp_path: Path) -> None:
    from testkit.server import running_server

    config = make_config(tmp_path)
    config = Config(**{**config.__dict__, "limits": _limits(config, unauthenticated_timeout_s=0.3)})
    async with running_server(config) as server:
        idle = CheckClient(server.url)
        checking = CheckClient(server.url)
        try:
            await idle.connect()
            await checking.connect()
            assert (await checking.call("check-start"))["ok"]
            await wait_for(lambda: not idle.sio.connected, timeout=5)
            assert checking.sio.connected
            assert (await checking.call("check-stop"))["ok"]
            # a check that ended no longer holds the socket open
            await wait_for(lambda: not checking.sio.connected, timeout=5)
        finally:
            await idle.close()
            await checking.close()


def _limits(config: Config, **changes: Any) -> Any:
    return type(config.limits)(**{**config.limits.__dict__, **changes})


def test_paths_try_each_relay_alone_with_its_own_credential(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        turn_secret=TURN_SECRET,
        turn_urls=(
            "turn:198.18.1.1:3478?transport=udp",
            "turn:198.18.1.1:3478?transport=tcp",
            "turns:relay.school.test:5349",
        ),
        ice_servers=(
            IceServer(urls=("stun:stun.school.test:3478",)),
            IceServer(urls=("turn:other.test:3478",), username="u", credential="c"),
        ),
    )
    paths = {p.id: p for p in check_paths(config, "check-abc", 1_900_000_000)}
    assert list(paths) == ["direct", "turn-udp", "turn-tcp", "turn-tls", "turn-udp-2"]
    assert paths["direct"].ice_servers == [{"urls": ["stun:stun.school.test:3478"]}]
    username, password = turn_rest_credential(TURN_SECRET, 1_900_000_000, "check-abc")
    for path_id in ("turn-udp", "turn-tcp", "turn-tls"):
        path = paths[path_id]
        assert path.ice_transport_policy == "relay"
        assert path.ice_servers == [
            {"urls": [path.url], "username": username, "credential": password}
        ]
    assert paths["turn-udp-2"].ice_servers[0]["username"] == "u"
    assert relay_transport("TURNS:x:5349?transport=tcp") == "turn-tls"


def test_checks_are_bounded_per_node_per_address_and_in_rate(tmp_path: Path) -> None:
    now = [0.0]
    checks = Checks(make_config(tmp_path), now_fn=lambda: now[0])

    async def send(event: str, payload: dict[str, Any]) -> None:
        return None

    async def run() -> None:
        first = [checks.start("10.0.0.1", send) for _ in range(check_mod.MAX_CHECKS_PER_ADDRESS)]
        try:
            checks.start("10.0.0.1", send)
        except Exception as exc:
            assert getattr(exc, "code", "") == "limit_reached"
        else:
            raise AssertionError("a third check from one address")
        for c in first:
            await c.close()
        # the burst is spent after CHECK_BURST_PER_ADDRESS starts
        for _ in range(check_mod.CHECK_BURST_PER_ADDRESS - len(first)):
            await checks.start("10.0.0.1", send).close()
        try:
            checks.start("10.0.0.1", send)
        except Exception as exc:
            assert getattr(exc, "code", "") == "rate_limited"
        else:
            raise AssertionError("more checks than the rate allows")
        now[0] += check_mod.CHECK_REFILL_S
        await checks.start("10.0.0.1", send).close()
        others = [checks.start(f"10.0.1.{i}", send) for i in range(check_mod.MAX_CHECKS)]
        try:
            checks.start("10.0.2.1", send)
        except Exception as exc:
            assert getattr(exc, "code", "") == "limit_reached"
        else:
            raise AssertionError("more checks than the node allows")
        probe_check = others[0]
        for _ in range(check_mod.MAX_PROBES_PER_CHECK):
            probe_check.probe(Source.MIC)
        try:
            probe_check.probe(Source.MIC)
        except Exception as exc:
            assert getattr(exc, "code", "") == "limit_reached"
        else:
            raise AssertionError("more probes than a check allows")
        await checks.close()
        assert not checks.running

    asyncio.run(run())
