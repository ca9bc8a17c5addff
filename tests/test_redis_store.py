"""The Redis session store against a real redis-server: the same answers
as the SQLite store, and nothing lost while Redis is down."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from server.cluster.redis_store import RedisSessionStore
from server.core.errors import SessionNotFound, SidecoachError
from server.core.roles import SessionState
from server.storage.sessions import RecordingDecision, SessionKind, SessionSettings
from testkit.multinode import RedisProc, redis_unavailable

SECRET = "redis-store-secret-" + "r" * 40

pytestmark = pytest.mark.skipif(redis_unavailable() is not None, reason=str(redis_unavailable()))


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisProc]:
    proc = RedisProc(tmp_path / "redis", persist=True)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def store(redis: RedisProc, tmp_path: Path) -> AsyncIterator[RedisSessionStore]:
    s = await RedisSessionStore.open(redis.url, tmp_path / "node-a", SECRET)
    try:
        yield s
    finally:
        await s.close()


async def test_sessions_are_shared_by_nodes(redis: RedisProc, store: RedisSessionStore,
                                            tmp_path: Path) -> None:
    other = await RedisSessionStore.open(redis.url, tmp_path / "node-b", SECRET)
    try:
        made = await store.create(
            title="Fractions", teacher_name="Ms. Rivera",
            settings=SessionSettings(recording=False, prompts=("Wait time",)),
        )  # fmt: skip
        seen = await other.get(made.id)
        assert seen == made
        await other.set_state(made.id, SessionState.LIVE, at=100.0)
        live = await store.get(made.id)
        assert live.state == SessionState.LIVE and live.started_at == 100.0
        assert [r.id for r in await store.list([SessionState.LIVE])] == [made.id]
        assert await store.list([SessionState.SCHEDULED]) == []
        with pytest.raises(SidecoachError) as refused:
            await store.set_state(made.id, SessionState.SCHEDULED, at=1.0)
        assert refused.value.code == "invalid_state"
        decision = RecordingDecision(True, "teacher", "Ms. Rivera", 101.0)
        await other.add_recording_decision(made.id, decision)
        assert (await store.get(made.id)).recording_planned
        with pytest.raises(SessionNotFound):
            await store.get("s-nonexistent")
        # a debrief room is a debrief on every node, watching its recording
        debrief = await store.create(
            title="Debrief: Fractions", teacher_name="Ms. Rivera", settings=SessionSettings(),
            kind=SessionKind.DEBRIEF, recording_id="r-fractions",
        )  # fmt: skip
        seen_debrief = await other.get(debrief.id)
        assert seen_debrief.kind == SessionKind.DEBRIEF
        assert seen_debrief.recording_id == "r-fractions"
    finally:
        await other.close()


async def test_changes_made_while_redis_is_down_reach_it_when_it_is_back(
    redis: RedisProc, store: RedisSessionStore, tmp_path: Path
) -> None:
    before = await store.create(title="Before", teacher_name="T", settings=SessionSettings())
    time.sleep(1.2)  # appendonly fsyncs every second
    redis.kill()
    # reads come from this node's mirror, writes are kept
    assert (await store.get(before.id)).title == "Before"
    await store.set_state(before.id, SessionState.LIVE, at=10.0)
    during = await store.create(title="During", teacher_name="T", settings=SessionSettings())
    await store.add_recording_decision(during.id, RecordingDecision(False, "teacher", "T", 11.0))
    assert (await store.get(during.id)).recording_planned is False
    assert {r.id for r in await store.list([SessionState.SCHEDULED])} == {during.id}
    assert await store.pending() == 3

    redis.start()
    assert await store.replay() == 3
    other = await RedisSessionStore.open(redis.url, tmp_path / "node-b", SECRET)
    try:
        assert (await other.get(before.id)).state == SessionState.LIVE
        replayed = await other.get(during.id)
        assert replayed.title == "During" and replayed.recording_planned is False
        assert await store.pending() == 0
    finally:
        await other.close()


async def test_records_not_signed_by_the_deployment_are_ignored(
    redis: RedisProc, store: RedisSessionStore, tmp_path: Path
) -> None:
    """Whoever can write to Redis without the deployment's secret cannot
    change a session: an unsigned record, or one signed with another
    secret, is as good as none (and counted); the real one is untouched
    by a failed attempt to move it."""
    import json

    import redis.asyncio as aioredis

    from server.cluster.redis_store import record_key, state_key

    made = await store.create(title="Real", teacher_name="T", settings=SessionSettings())
    await store.set_state(made.id, SessionState.LIVE, at=100.0)
    raw = aioredis.Redis.from_url(redis.url, decode_responses=True)
    forged = made.to_json() | {"state": "ended", "ended_at": 101.0}
    other = await RedisSessionStore.open(redis.url, tmp_path / "other", "another-" + "x" * 40)
    try:
        fake = await other.create(title="Fake", teacher_name="X", settings=SessionSettings())
        await raw.set(record_key(made.id), json.dumps(forged))  # unsigned
        await raw.zadd(state_key(SessionState.ENDED), {made.id: 1.0})
        # this node's last believed copy stands; another node never saw it
        assert (await store.get(made.id)).state == SessionState.LIVE
        third = await RedisSessionStore.open(redis.url, tmp_path / "third", SECRET)
        with pytest.raises(SessionNotFound):
            await third.get(made.id)
        await third.close()
        with pytest.raises(SessionNotFound):
            await store.get(fake.id)  # signed, with another secret
        listed = {r.id for r in await store.list()}
        assert made.id not in listed and fake.id not in listed
        with pytest.raises(SessionNotFound):
            await store.set_state(made.id, SessionState.ENDED, at=102.0)
        assert store.redis.signer.refused["record"] >= 5
    finally:
        await other.close()
        await raw.aclose()
