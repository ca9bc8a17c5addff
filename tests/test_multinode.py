"""Several nodes, one deployment: real redis-server, real Sidecoach
processes on loopback ports, real aiortc peers (testkit/multinode.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.core.tokens import issue_admin_token
from testkit.multinode import (
    SECRET,
    Deployment,
    Node,
    deployment,
    http,
    redis_unavailable,
    wait_async,
)
from testkit.peers import Participant, PatternVideoTrack, ToneTrack, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_unavailable() is not None, reason=str(redis_unavailable())),
]


async def wait_until_live_on(via: Node, session_id: str, node: str) -> None:
    seen: list[object] = []

    async def check() -> bool:
        _, body = await via.get(f"/api/sessions/{session_id}")
        seen.append((body.get("live") or {}).get("node"))
        return seen[-1] == node

    await wait_async(check, timeout=10, what=lambda: f"session live on {node} (seen {seen[-3:]})")


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[Deployment]:
    """Two nodes on one box: one data directory, sessions in its SQLite file."""
    with deployment(tmp_path) as dep:
        dep.start_nodes("a", "b")
        yield dep


@pytest.fixture
def two_boxes(tmp_path: Path) -> Iterator[Deployment]:
    """Two nodes as on two boxes: a data directory each, sessions in Redis,
    Redis secured as an operator would (TLS only, an ACL user's password)."""
    with deployment(tmp_path, redis_store=True, secure=True) as dep:
        dep.start_nodes("a", "b")
        yield dep


async def test_session_on_b_joined_through_a_link(two_boxes: Deployment) -> None:
    """The teacher is on node B (the session is placed there); a coach
    opens node A's link: its signaling is relayed to B, the picture flows
    from B, a cue sent through A reaches the teacher on B and is
    acknowledged, and an admin on A ends the lesson for both."""
    dep = two_boxes
    a, b = dep.nodes["a"], dep.nodes["b"]
    await dep.wait_nodes(2)
    session_id = await dep.create_session(via=a)
    teacher = b.participant(session_id, "teacher")
    coach = a.participant(session_id, "coach")
    try:
        await teacher.join()
        await teacher.publish(PatternVideoTrack(), "camera")
        await teacher.publish(ToneTrack(), "mic")
        # placed where the teacher came in; node A learns it from B's heartbeat
        await wait_until_live_on(a, session_id, "b")

        await coach.join()
        assert coach.joined["role"] == "coach"
        await wait_for(lambda: len(coach.received) == 2, timeout=15)
        video = coach.tracks(source="camera")[0]
        await wait_for(lambda: video.frames > 10, timeout=15)
        assert video.width == 320
        _, ready_a = await a.get("/readyz")
        assert ready_a["relayed_out"] == 1 and ready_a["sessions"] == 0, ready_a

        reply = await coach.call("cue", {"text": "Wait time"})
        assert reply["ok"], reply
        await wait_for(lambda: teacher.got("cue"), timeout=10)
        assert teacher.got("cue")[0]["text"] == "Wait time"
        await wait_for(lambda: coach.got("cue-state", state="delivered"), timeout=10)

        status, body = await http(a.url, "POST", f"/api/sessions/{session_id}/end")
        assert status == 200 and body["session"]["state"] == "ended", body
        await wait_for(lambda: teacher.got("session-ended") and coach.got("session-ended"))
    finally:
        await coach.close()
        await teacher.close()

    # the recording is on B's disk; A's recording API finds and serves it
    async def listed_on_a() -> bool:
        _, listing = await a.get("/api/recordings")
        rows = [r for r in listing["recordings"] if r["session_id"] == session_id]
        return bool(rows) and rows[0]["state"] == "finalized"

    await wait_async(listed_on_a, 15, lambda: "B's recording listed by A")
    assert not (a.data_dir / "recordings").exists()
    _, listing = await a.get("/api/recordings")
    (row,) = [r for r in listing["recordings"] if r["session_id"] == session_id]
    assert row["node"] == "b"
    status, view = await a.get(f"/api/recordings/{row['id']}")
    assert status == 200 and view["manifest"]["node"] == "b", view
    async with (
        aiohttp.ClientSession() as client,
        client.get(
            f"{a.url}/recordings/{row['id']}/classroom.webm",
            headers={"Authorization": f"Bearer {issue_admin_token(SECRET, ttl_s=60)}",
                     "Range": "bytes=0-99"},
        ) as resp,
    ):  # fmt: skip
        assert resp.status == 206
        assert (await resp.read())[:4] == b"\x1a\x45\xdf\xa3"  # a WebM (EBML) file


async def join_retrying(
    node: Node, session_id: str, role: str, *, timeout: float = 30, **kw: Any
) -> Participant:
    """Join like a page does after a drop: a new socket each time, until
    the join is accepted (e.g. while the session's old node is being given
    up on, joins get ``node_unavailable``)."""
    deadline = time.monotonic() + timeout
    errors: list[str] = []
    while True:
        p = node.participant(session_id, role, **kw)
        try:
            await p.connect()
            reply = await p.call("join", {"token": p.token})
            if reply.get("ok"):
                p.joined = reply
                return p
            errors.append(reply["error"]["code"])
        except Exception as exc:
            errors.append(type(exc).__name__)
        await p.close()
        if time.monotonic() > deadline:
            raise AssertionError(f"{role} could not rejoin within {timeout:.0f}s: {errors[-5:]}")
        await asyncio.sleep(0.4)


async def frames_flow(receiver: Participant, source: str = "camera", more: int = 10) -> None:
    await wait_for(lambda: receiver.tracks(source=source), timeout=20)
    track = receiver.tracks(source=source)[0]
    start = track.frames
    await wait_for(lambda: track.frames > start + more, timeout=20)


@pytest.mark.slow
async def test_kill_9_node_b_session_moves_and_recording_continues(
    two_nodes: Deployment,
) -> None:
    """Node B hosts a recorded lesson (the teacher and a coach came in
    through node A). B is killed with kill -9: both pages reconnect, the
    session opens on A, the coach sees the classroom again, and the
    recording has two parts of one series: B's (recovered by A, which
    shares B's data directory) and A's, both with media."""
    dep = two_nodes
    a, b = dep.nodes["a"], dep.nodes["b"]
    await dep.wait_nodes(2)
    busy = await dep.create_session(via=a, title="keeps node A busy")
    other = a.participant(busy, "teacher")
    session_id = await dep.create_session(via=a, recording=True)
    teacher = a.participant(session_id, "teacher")
    coach = a.participant(session_id, "coach")
    people = [other, teacher, coach]
    try:
        await other.join()
        await wait_until_live_on(b, busy, "a")  # B knows A has a session: S goes to B
        await teacher.join()
        await teacher.publish(PatternVideoTrack(), "camera")
        await teacher.publish(ToneTrack(), "mic")
        await coach.join()
        await wait_until_live_on(a, session_id, "b")
        await frames_flow(coach, more=30)
        await wait_for(lambda: teacher.got("recording-state", state="recording"), timeout=10)

        b.kill()
        await wait_for(lambda: not teacher.sio.connected and not coach.sio.connected, timeout=15)
        teacher = await join_retrying(a, session_id, "teacher")
        coach = await join_retrying(a, session_id, "coach")
        people += [teacher, coach]
        await teacher.publish(PatternVideoTrack(), "camera")
        await teacher.publish(ToneTrack(), "mic")
        await frames_flow(coach, more=30)
        await wait_until_live_on(a, session_id, "a")
        await wait_for(lambda: teacher.got("recording-state", state="recording"), timeout=10)

        status, body = await http(a.url, "POST", f"/api/sessions/{session_id}/end")
        assert status == 200, body

        async def both_parts_done() -> bool:
            _, listing = await a.get(f"/api/recordings?session={session_id}")
            rows = [r for r in listing["recordings"] if r["session_id"] == session_id]
            return len(rows) == 2 and all(r["state"] != "recording" for r in rows)

        await wait_async(both_parts_done, timeout=20, what=lambda: "both parts finalized")
        _, listing = await a.get("/api/recordings")
        parts = sorted(
            (r for r in listing["recordings"] if r["session_id"] == session_id),
            key=lambda r: r["part"],
        )
        assert [r["part"] for r in parts] == [1, 2]
        assert parts[0]["series"] == parts[1]["series"] == parts[0]["id"]
        assert [r["state"] for r in parts] == ["recovered", "finalized"]
        assert [r["node"] for r in parts] == ["b", "a"]  # where each part was made
        for row in parts:
            _, view = await a.get(f"/api/recordings/{row['id']}")
            frames = {t["source"]: t["frames"] for t in view["manifest"]["tracks"]}
            assert frames.get("camera", 0) > 10 and frames.get("mic", 0) > 10, view["manifest"]
            assert view["manifest"]["node"] == ("b" if row["part"] == 1 else "a")
    finally:
        for p in people:
            await p.close()


@pytest.mark.slow
async def test_redis_killed_and_restarted(two_boxes: Deployment) -> None:
    """Redis (the directory and the session store) dies: the lesson on B
    carries on (media, and a cue relayed from A over the node link), a
    coach can still join it on B, a new lesson is created on A and opens
    there, both nodes say so in /readyz; Redis returns: both are ready
    again, and B sees the new lesson (kept by A meanwhile) live on A."""
    dep = two_boxes
    a, b = dep.nodes["a"], dep.nodes["b"]
    await dep.wait_nodes(2)
    first = await dep.create_session(via=a)
    teacher = b.participant(first, "teacher")
    coach = a.participant(first, "coach")
    people = [teacher, coach]
    try:
        await teacher.join()
        await teacher.publish(PatternVideoTrack(), "camera")
        await coach.join()
        await wait_until_live_on(a, first, "b")
        await frames_flow(coach)

        dep.redis.kill()

        async def not_ready(node: Node) -> bool:
            status, body = await node.get("/readyz")
            return status == 503 and any("Redis" in r for r in body["reasons"])

        for node in (a, b):
            await wait_async(lambda n=node: not_ready(n), 10, lambda: "readyz says Redis is down")
        await frames_flow(coach, more=30)
        reply = await coach.call("cue", {"text": "Proximity"})
        assert reply["ok"], reply
        await wait_for(lambda: teacher.got("cue", text="Proximity"), timeout=10)
        late = b.participant(first, "coach")
        people.append(late)
        await late.join()
        await frames_flow(late)

        second = await dep.create_session(via=a, title="during the outage")
        teacher2 = a.participant(second, "teacher")
        coach2 = a.participant(second, "coach")
        people += [teacher2, coach2]
        await teacher2.join()
        await teacher2.publish(PatternVideoTrack(), "camera")
        await coach2.join()
        await frames_flow(coach2)

        dep.redis.start()

        async def ready(node: Node) -> bool:
            status, _ = await node.get("/readyz")
            return status == 200

        for node in (a, b):
            await wait_async(lambda n=node: ready(n), 15, lambda: "ready again")
        await wait_until_live_on(b, second, "a")
        await frames_flow(coach, more=10)
        assert "Redis at rediss://127.0.0.1" in a.proc.output()
        for node in (a, b):  # the Redis password is in no log line
            assert dep.redis.password not in node.proc.output()
    finally:
        for p in people:
            await p.close()
