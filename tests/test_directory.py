"""The session -> node directory against a real redis-server: claims that
arrive together spread by load, entries nobody of ours signed are replaced,
a live holder's entry is kept, and a refused password is a clear error."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from server.cluster.check import check
from server.cluster.directory import Directory, NodeInfo, node_key, session_key
from server.cluster.redis_conn import RedisConn, preflight
from server.core.config import Config
from server.core.errors import ConfigError
from testkit.multinode import RedisProc, redis_unavailable

pytestmark = pytest.mark.skipif(redis_unavailable() is not None, reason=str(redis_unavailable()))

SECRET = "directory-secret-" + "d" * 40


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisProc]:
    proc = RedisProc(tmp_path / "redis", secure=True)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def conn(redis: RedisProc) -> AsyncIterator[RedisConn]:
    c = RedisConn(redis.url, SECRET, tls_ca=redis.tls_ca)
    try:
        yield c
    finally:
        await c.close()


def info(node_id: str, *sessions: str) -> NodeInfo:
    return NodeInfo(
        id=node_id, url=f"http://{node_id}", tag=node_id, pid=1, host="h", ice=[],
        started_at=0.0, sessions={s: {} for s in sessions},
    )  # fmt: skip


async def test_claims_arriving_together_spread_over_the_nodes(conn: RedisConn) -> None:
    """12 first joins at once on two nodes, each node offering itself
    first: every claim sees the ones before it, whoever made them."""
    directory = Directory(conn, node_ttl_s=5.0)
    for node_id in ("w0", "w1"):
        await directory.beat(info(node_id))
    w0, w1 = info("w0"), info("w1")
    claims = [
        directory.claim(f"s{i}", [w0, w1] if i % 3 else [w1, w0]) for i in range(12)
    ]
    held = await asyncio.gather(*claims)
    assert Counter(e.holder for e in held) == {"w0": 6, "w1": 6}
    # already placed: a second claim keeps the holder
    again = await directory.claim("s0", [w1, w0])
    assert again.holder == held[0].holder
    # sessions a heartbeat lists count once, with the recent claims
    busy = info("w0", "s0", "s1", "s2", "x1", "x2", "x3", "x4")
    assert (await directory.claim("s-next", [busy, w1])).holder == "w1"


async def test_an_entry_not_signed_by_us_is_replaced_a_live_one_is_kept(
    conn: RedisConn, redis: RedisProc
) -> None:
    directory = Directory(conn, node_ttl_s=5.0)
    await directory.beat(info("a"))
    raw = redis.client()
    try:
        # someone with Redis access names their own node, with a heartbeat key
        await raw.set(node_key("evil"), '{"id": "evil", "url": "http://203.0.113.9"}')
        await raw.set(session_key("s1"), "evil")
        entry = await directory.holder("s1")
        assert entry is not None and entry.holder is None  # not believed
        placed = await directory.claim("s1", [info("a")], stale=entry.raw)
        assert placed.holder == "a"
        # a live node's signed entry stays, whoever claims
        assert (await directory.claim("s1", [info("b")])).holder == "a"
        # a stale value that changed meanwhile is not replaced
        assert not await directory.take_back("s1", "evil", "b")
        assert (await directory.holder("s1")).holder == "a"  # type: ignore[union-attr]
        nodes, unverified = await directory.live_nodes()
        assert [n.id for n in nodes] == ["a"]
        await raw.zadd("sidecoach:nodes", {"evil": 10**13})
        nodes, unverified = await directory.live_nodes()
        assert [n.id for n in nodes] == ["a"] and unverified == ["evil"]
        assert conn.signer.refused["session"] >= 1 and conn.signer.refused["node"] >= 1
    finally:
        await raw.aclose()


async def test_a_refused_password_is_a_clear_error_and_never_shown(redis: RedisProc) -> None:
    wrong = redis.url.replace(redis.password, "not-the-password")
    with pytest.raises(ConfigError) as refused:
        await preflight(wrong, SECRET, redis.tls_ca)
    assert "refused the user name or password" in refused.value.message
    assert "not-the-password" not in refused.value.message
    no_user = f"rediss://127.0.0.1:{redis.port}/0"  # the default user is off
    with pytest.raises(ConfigError) as refused:
        await preflight(no_user, SECRET, redis.tls_ca)
    assert "refused the user name or password" in refused.value.message
    with pytest.raises(ConfigError) as refused:  # the system's CAs do not know ours
        await preflight(redis.url, SECRET, None)
    assert "certificate is not trusted" in refused.value.message
    await preflight(redis.url, SECRET, redis.tls_ca)  # as configured: fine


async def test_cluster_check_says_when_redis_is_not_secured(tmp_path: Path) -> None:
    plain = RedisProc(tmp_path / "plain")
    try:
        config = Config(secret=SECRET, redis_url=plain.url)
        lines, ok = await check(config)
    finally:
        plain.stop()
    assert not ok
    assert lines[0].startswith("PROBLEM live nodes: 0")
    assert lines[-1] == (
        "PROBLEM Redis secured: no TLS (rediss://): the password and every entry cross the"
        " network in clear; no password in SIDECOACH_REDIS_URL; it accepts writes without"
        " a password"
    )
