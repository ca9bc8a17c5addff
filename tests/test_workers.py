"""``serve --workers N`` (nodes sharing one port) and long-polling requests
that reach the wrong node."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest
import socketio

from server.core.roles import Role
from server.core.tokens import issue_invite
from testkit.multinode import SECRET, deployment, http, redis_unavailable, wait_async
from testkit.procs import Proc, free_port, sidecoach_cmd, sidecoach_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_unavailable() is not None, reason=str(redis_unavailable())),
]


@pytest.mark.slow
async def test_long_polling_through_the_wrong_node_is_forwarded(tmp_path: Path) -> None:
    """A client on long-polling opens its socket on node A, then every
    request reaches node B (no sticky load balancer): B forwards them to A,
    and the client joins and gets its answer. B refuses a WebSocket upgrade
    for A's socket (the client keeps polling)."""
    with deployment(tmp_path) as dep:
        a, b = dep.start_nodes("a", "b")
        await dep.wait_nodes(2)
        session_id = await dep.create_session(via=a)
        token = issue_invite(SECRET, session_id, Role.OBSERVER, ttl_s=600)
        path = "/socket.io/?EIO=4&transport=polling"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            async with http.get(a.url + path) as resp:
                opened = json.loads((await resp.text())[1:])
            sid = opened["sid"]
            on_b = f"{b.url}{path}&sid={sid}"

            async def post(body: str) -> None:
                async with http.post(on_b, data=body.encode()) as resp:
                    assert resp.status == 200, await resp.text()

            async def poll() -> str:
                async with http.get(on_b) as resp:
                    assert resp.status == 200, await resp.text()
                    return await resp.text()

            await post("40")
            assert (await poll()).startswith("40")
            await post("421" + json.dumps(["join", {"token": token}]))
            deadline = time.monotonic() + 10
            reply = ""
            while "431" not in reply and time.monotonic() < deadline:
                reply += await poll()
            ack = json.loads(reply[reply.index("431") + 3 :].split("\x1e")[0])
            assert ack[0]["ok"] and ack[0]["role"] == "observer", ack
            ws_url = f"{b.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket&sid={sid}"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(ws_url)
            assert refused.value.status == 400


@pytest.mark.slow
async def test_workers_share_a_port_and_are_restarted(tmp_path: Path) -> None:
    """``serve --workers 2``: two nodes answer on one port; a worker killed
    with kill -9 is started again; SIGTERM drains and stops them all."""
    with deployment(tmp_path) as dep:
        port = free_port()
        cmd = sidecoach_cmd(
            "serve", "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(tmp_path / "data"), "--ice-listen-ips", "127.0.0.1",
            "--node-id", "box", "--redis-url", dep.redis.url,
        )  # fmt: skip
        parent = Proc(cmd, tmp_path / "workers.log", env=sidecoach_env(SIDECOACH_SECRET=SECRET))
        try:
            parent.wait_output(r"(?s)listening on.*listening on", timeout=40)
            url = f"http://127.0.0.1:{port}"

            async def answering() -> dict[str, int]:
                seen: dict[str, int] = {}
                for _ in range(40):
                    connector = aiohttp.TCPConnector(force_close=True)  # a new connection each
                    async with (
                        aiohttp.ClientSession(connector=connector) as http,
                        http.get(url + "/readyz") as resp,
                    ):
                        body = await resp.json()
                        seen[body["node"]] = body["nodes"].__len__()
                return seen

            deadline = time.monotonic() + 20
            seen = await answering()
            while set(seen) != {"box-w0", "box-w1"} or set(seen.values()) != {2}:
                assert time.monotonic() < deadline, f"workers answering: {seen}"
                await asyncio.sleep(0.3)
                seen = await answering()

            children = _children(parent.pid)
            assert len(children) == 2, children
            os.kill(children[0], signal.SIGKILL)
            parent.wait_output(r"worker box-w\d exited \(-9\); restarting", timeout=10)
            deadline = time.monotonic() + 30
            while len(set(_children(parent.pid)) - {children[0]}) < 2:
                assert time.monotonic() < deadline, "the killed worker was not started again"
                await asyncio.sleep(0.2)
            parent.proc.send_signal(signal.SIGTERM)
            assert parent.proc.wait(timeout=30) == 0
            assert not [p for p in _children(parent.pid) if _alive(p)]
        finally:
            parent.stop()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


@pytest.mark.slow
async def test_twelve_first_joins_at_once_split_over_two_workers(tmp_path: Path) -> None:
    """Issue 22: six lessons whose teachers joined at the same moment all
    went to one of two workers. Each claim now counts every claim before
    it, whichever worker made it: 12 simultaneous first joins split 6/6
    (give or take one)."""
    with deployment(tmp_path) as dep:
        port = free_port()
        cmd = sidecoach_cmd(
            "serve", "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(tmp_path / "data"), "--ice-listen-ips", "127.0.0.1",
            "--node-id", "box",
        )  # fmt: skip
        env = sidecoach_env(
            SIDECOACH_SECRET=SECRET,
            **dep.redis.node_env(),
        )
        parent = Proc(cmd, tmp_path / "workers.log", env=env)
        clients: list[socketio.AsyncClient] = []
        try:
            parent.wait_output(r"(?s)listening on.*listening on", timeout=40)
            url = f"http://127.0.0.1:{port}"
            sessions = []
            for i in range(12):
                body_in = {"title": f"L{i}", "teacher_name": "T"}
                status, body = await http(url, "POST", "/api/sessions", json=body_in)
                assert status == 201, body
                sessions.append(body["session"]["id"])
            await _wait_two_workers(url)
            clients = [socketio.AsyncClient(reconnection=False) for _ in sessions]
            await asyncio.gather(*(c.connect(url, transports=["websocket"]) for c in clients))
            joins = [
                c.call("join", {"token": issue_invite(SECRET, s, Role.TEACHER, ttl_s=600)})
                for c, s in zip(clients, sessions, strict=True)
            ]
            replies = await asyncio.gather(*joins)
            assert all(r["ok"] for r in replies), replies

            async def split() -> dict[str, int]:
                _, body = await http(url, "GET", "/api/sessions?state=live")
                nodes = [(s.get("live") or {}).get("node") for s in body["sessions"]]
                return {n: nodes.count(n) for n in set(nodes)}

            seen: dict[str, int] = {}

            async def all_placed() -> bool:
                seen.clear()
                seen.update(await split())
                return sum(v for k, v in seen.items() if k) == 12 and None not in seen

            await wait_async(all_placed, 15, lambda: f"lessons live per worker: {seen}")
            print(f"12 simultaneous first joins: {seen}")
            assert set(seen) == {"box-w0", "box-w1"}
            assert abs(seen["box-w0"] - seen["box-w1"]) <= 2, seen  # 6/6 give or take one
        finally:
            for c in clients:
                with contextlib.suppress(Exception):
                    await c.disconnect()
            parent.stop()


async def _wait_two_workers(url: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        seen = set()
        for _ in range(20):
            connector = aiohttp.TCPConnector(force_close=True)
            async with (
                aiohttp.ClientSession(connector=connector) as client,
                client.get(url + "/readyz") as resp,
            ):
                body = await resp.json()
                if len(body["nodes"]) == 2:
                    seen.add(body["node"])
        if seen == {"box-w0", "box-w1"}:
            return
        assert time.monotonic() < deadline, f"workers answering: {seen}"
        await asyncio.sleep(0.3)
