"""Write access to the deployment's Redis, without the deployment secret,
cannot end, join or read a lesson (issue 22's fake node: it announced
itself in Redis, claimed a lesson, captured a real node's link token and
used it to end the teacher's lesson).

Real redis-server (TLS, an ACL user's password: the attacker has both),
two real nodes, real aiortc peers; the attacker's "node" is an HTTP
server in this process that records every request it gets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web

from server.cluster.errors import LinkRefused
from server.cluster.handshake import NODE_HEADER, NONCE_HEADER, LinkKeys, connect
from server.cluster.node import sid_tag
from server.cluster.signing import EntrySigner
from testkit.multinode import SECRET, Deployment, deployment, redis_unavailable
from testkit.peers import PatternVideoTrack, wait_for
from testkit.procs import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_unavailable() is not None, reason=str(redis_unavailable())),
]


class FakeNode:
    """What the attacker runs at the URL it writes into Redis: it records
    every request, and on a node link answers a hello it cannot prove."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[str] = []
        self.link_messages: list[str] = []
        self._runner: web.AppRunner | None = None

    async def _any(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path_qs} {dict(request.headers)}")
        if request.path == "/cluster/link":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            hello = {"node": "evil", "nonce": "0" * 32, "proof": "f" * 64}
            await ws.send_str(json.dumps(hello))
            with contextlib.suppress(TimeoutError):
                async for msg in ws:
                    self.link_messages.append(str(msg.data))
            return ws
        return web.json_response({"recordings": []})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
def two_boxes(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(
        tmp_path, redis_store=True, secure=True,
        extra_env={"SIDECOACH_LIFECYCLE_INTERVAL_S": "0.5"},
    ) as dep:  # fmt: skip
        dep.start_nodes("a", "b")
        yield dep


@pytest.fixture
async def fake() -> AsyncIterator[FakeNode]:
    node = FakeNode()
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


async def announce(raw: Any, fake: FakeNode, session_id: str, now_ms: int) -> None:
    """What Redis write access allows: announce nodes (one unsigned, one
    signed with a guessed secret) and claim the lesson for them. (Deleting
    keys would stop joins too: Redis write access can always deny service;
    it must not do more. The lessons themselves live in PostgreSQL.)"""
    beat = {
        "id": "evil", "url": fake.url, "tag": sid_tag("evil"), "pid": 1, "host": "x",
        "ice": ["127.0.0.1"], "started_at": 0, "heartbeat_at": now_ms / 1000,
        "sessions": {session_id: {}},
    }  # fmt: skip
    guessed = EntrySigner("guessed-secret-" + "g" * 40)
    await raw.set("sidecoach:node:evil", json.dumps(beat), px=5000)
    beat2 = json.dumps({**beat, "id": "evil2"})
    await raw.set("sidecoach:node:evil2", guessed.sign("sidecoach:node:evil2", beat2), px=5000)
    await raw.zadd("sidecoach:nodes", {"evil": now_ms, "evil2": now_ms})
    await raw.set(f"sidecoach:session:{session_id}", "evil", px=5000)


async def refused_link(node_url: str, token: Any) -> list[str]:
    """Open a link to a real node claiming to be node "a" and send ``token``
    (then a request to end a session): what the node answered."""
    answers = []
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            node_url + "/cluster/link",
            headers={NODE_HEADER: "a", NONCE_HEADER: secrets.token_hex(16)},
        )
        hello = json.loads((await ws.receive(timeout=5)).data)
        await ws.send_str(json.dumps({"token": token(hello["nonce"])}))
        with contextlib.suppress(Exception):
            await ws.send_str(json.dumps([["req", 1, "end-session", {"sessionId": "x"}]]))
        async for msg in ws:
            answers.append(str(msg.data))
        answers.append(f"closed {ws.close_code}")
    return answers


@pytest.mark.slow
async def test_redis_write_access_alone_cannot_end_join_or_read_a_lesson(
    two_boxes: Deployment, fake: FakeNode
) -> None:
    dep = two_boxes
    a, b = dep.nodes["a"], dep.nodes["b"]
    await dep.wait_nodes(2)
    session_id = await dep.create_session(via=a)
    raw = dep.redis.client()  # Redis's credentials, not the deployment's secret
    stop = asyncio.Event()

    async def keep_announcing() -> None:
        while not stop.is_set():
            now_ms = int((await raw.time())[0]) * 1000
            await announce(raw, fake, session_id, now_ms)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.3)

    attacker = asyncio.ensure_future(keep_announcing())
    teacher = a.participant(session_id, "teacher")
    coach = b.participant(session_id, "coach")
    try:
        await asyncio.sleep(1.5)  # every node has read the fake heartbeats
        # join: the lesson opens on a real node, whatever Redis says
        await teacher.join()
        await teacher.publish(PatternVideoTrack(), "camera")
        await coach.join()
        await wait_for(lambda: coach.tracks(source="camera"), timeout=15)
        video = coach.tracks(source="camera")[0]
        await wait_for(lambda: video.frames > 10, timeout=15)
        _, body = await a.get(f"/api/sessions/{session_id}")
        assert body["live"]["node"] in ("a", "b"), body

        # end: a link token the attacker captured or made is refused, and
        # the request it carries is never run
        keys = LinkKeys(SECRET)  # a real node's tokens, as if captured
        old = secrets.token_hex(16)
        forged = {
            "captured on another connection": lambda _: keys.token("a", "b", old),
            "addressed to another node": lambda n: keys.token("a", "evil", n),
            "signed with a guessed secret": lambda n: LinkKeys("g" * 48).token("a", "b", n),
            "alg none": lambda n: jwt.encode(
                {"typ": "node-link", "iss": "a", "aud": "b", "nonce": n, "exp": 2**31},
                None,
                algorithm="none",
            ),  # fmt: skip
            "an invite's secret": lambda n: jwt.encode({"typ": "node"}, SECRET, "HS256"),
        }
        for what, token in forged.items():
            answers = await refused_link(b.url, token)
            assert answers == ["closed 4401"], (what, answers)

        # read: recordings and long-polls are never passed to the fake URL
        status, _ = await a.get("/api/recordings")
        assert status == 200
        status, _ = await a.get("/api/recordings", admin=False)
        assert status == 401
        evil_sid = f"{sid_tag('evil')}.{secrets.token_urlsafe(15)}"
        await a.get(f"/socket.io/?EIO=4&transport=polling&sid={evil_sid}", admin=False)

        # the lesson goes on, on one node, for as long as the attack lasts
        await asyncio.sleep(2.0)
        _, body = await a.get(f"/api/sessions/{session_id}")
        assert body["session"]["state"] == "live" and body["live"], body
        start = video.frames
        await wait_for(lambda: video.frames > start + 10, timeout=15)
        assert not teacher.got("session-ended") and not coach.got("session-ended")
        assert not teacher.got("removed") and not coach.got("removed")

        assert fake.requests == [], fake.requests  # not one request, not one token
        for node in (a, b):  # both ignore the fake heartbeats, and count them
            _, metrics = await node.get("/metrics", admin=False)
            assert 'sidecoach_redis_entries_refused_total{kind="node"}' in metrics, node.name
        _, metrics = await a.get("/metrics", admin=False)  # hosts the lesson
        assert 'sidecoach_redis_entries_refused_total{kind="session"}' in metrics
    finally:
        stop.set()
        await attacker
        await raw.aclose()
        await coach.close()
        await teacher.close()


async def test_a_node_sends_no_credential_to_a_url_that_cannot_prove_itself(
    fake: FakeNode,
) -> None:
    """Even if a node were sent to a URL it should not trust, the URL gets
    the node's name and a nonce, and nothing it could use."""
    async with aiohttp.ClientSession() as http:
        for expect in ("evil", None):
            with pytest.raises(LinkRefused):
                await connect(http, fake.url, LinkKeys(SECRET), "a", expect,
                              heartbeat=2.0, max_msg_size=2**20)  # fmt: skip
    await wait_for(lambda: len(fake.requests) == 2)
    assert fake.link_messages == []  # no token was sent
    assert all("Authorization" not in r for r in fake.requests)
