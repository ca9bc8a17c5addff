"""Several nodes, one deployment: real redis-server, real Sidecoach
processes on loopback ports, real aiortc peers (tests/multinode.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.multinode import Deployment, Node, deployment, http, redis_unavailable, wait_async
from tests.peers import PatternVideoTrack, ToneTrack, wait_for

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
    with deployment(tmp_path) as dep:
        dep.start_node("a")
        dep.start_node("b")
        yield dep


async def test_session_on_b_joined_through_a_link(two_nodes: Deployment) -> None:
    """The teacher is on node B (the session is placed there); a coach
    opens node A's link: its signaling is relayed to B, the picture flows
    from B, a cue sent through A reaches the teacher on B and is
    acknowledged, and an admin on A ends the lesson for both."""
    dep = two_nodes
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
