"""Where a new lesson goes, and the settings of several nodes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from server.cli import main
from server.cluster.directory import NodeInfo
from server.cluster.errors import LinkRefused
from server.cluster.handshake import TOKEN_TTL_S, LinkKeys
from server.cluster.node import ClusterNode
from server.cluster.signing import SESSION, EntrySigner, derive_key, holder_of
from server.cluster.workers import worker_argv
from server.core.config import Config, check_cluster_settings
from server.core.errors import ConfigError
from server.live.manager import ServerDraining


def node(node_id: str, sessions: int = 0, cpu: float = 0.0, draining: bool = False) -> NodeInfo:
    return NodeInfo(
        id=node_id, url=f"http://{node_id}", tag=node_id, pid=1, host="h", ice=[],
        started_at=0.0, draining=draining, cpu_pct=cpu,
        sessions={f"{node_id}-s{i}": {} for i in range(sessions)},
    )  # fmt: skip


def cluster(me: str, *others: NodeInfo, mine: NodeInfo | None = None) -> ClusterNode:
    config = Config(secret="s" * 40, redis_url="redis://127.0.0.1:1/0", node_id=me)
    c = ClusterNode(config, sio=None, catalog=None)  # type: ignore[arg-type]
    c.nodes = {n.id: n for n in (mine or node(me), *others)}
    return c


def ids(nodes: list[NodeInfo]) -> list[str]:
    return [n.id for n in nodes]


def test_a_new_lesson_may_go_to_any_live_node_this_one_first() -> None:
    """The claim in Redis picks the least loaded of these (a tie: the first)."""
    assert ids(cluster("a", node("b", sessions=1), node("c"))._candidates())[0] == "a"
    assert set(ids(cluster("a", node("b"), node("c"))._candidates())) == {"a", "b", "c"}


def test_busy_and_draining_nodes_get_no_new_lessons() -> None:
    busy = cluster("a", node("b", sessions=5), mine=node("a", cpu=95.0))
    assert ids(busy._candidates()) == ["b"]
    all_busy = cluster("a", node("b", sessions=5, cpu=90.0), mine=node("a", cpu=95.0))
    assert ids(all_busy._candidates()) == ["a", "b"]  # every node is busy: all may
    draining = cluster("a", node("b", sessions=9), mine=node("a", draining=True))
    assert ids(draining._candidates()) == ["b"]
    everyone = cluster("a", node("b", draining=True), mine=node("a", draining=True))
    with pytest.raises(ServerDraining):
        everyone._candidates()


def test_entries_are_believed_only_with_the_deployment_signature() -> None:
    signer = EntrySigner("s" * 40)
    signed = signer.sign("sidecoach:session:s1", "node-a")
    assert signer.open(SESSION, "sidecoach:session:s1", signed) == "node-a"
    assert holder_of(signed) == "node-a"
    # moved to another key, altered, unsigned, or signed with another secret
    assert signer.open(SESSION, "sidecoach:session:s2", signed) is None
    assert signer.open(SESSION, "sidecoach:session:s1", signed[:-1] + "b") is None
    assert signer.open(SESSION, "sidecoach:session:s1", "node-a") is None
    other = EntrySigner("t" * 40).sign("sidecoach:session:s1", "node-a")
    assert signer.open(SESSION, "sidecoach:session:s1", other) is None
    assert signer.refused == {SESSION: 4}


def test_a_link_token_is_good_for_one_node_one_connection_a_few_seconds() -> None:
    keys = LinkKeys("s" * 40)
    token = keys.token("a", "b", "n" * 32)
    keys.check_token(token, me="b", client="a", nonce="n" * 32)
    refused = [
        dict(me="c", client="a", nonce="n" * 32),  # addressed to another node
        dict(me="b", client="x", nonce="n" * 32),  # issued by another node
        dict(me="b", client="a", nonce="m" * 32),  # made for another connection
    ]
    for where in refused:
        with pytest.raises(LinkRefused):
            keys.check_token(token, **where)
    with pytest.raises(LinkRefused):  # another secret
        LinkKeys("t" * 40).check_token(token, me="b", client="a", nonce="n" * 32)
    now = int(time.time())
    stale = {"typ": "node-link", "iss": "a", "aud": "b", "nonce": "n" * 32,
             "iat": now - 60, "exp": now - 60 + TOKEN_TTL_S}  # fmt: skip
    for bad in (
        jwt.encode(stale, derive_key("s" * 40, "node-links/v1"), algorithm="HS256"),
        jwt.encode({**stale, "exp": now + 5}, None, algorithm="none"),
    ):
        with pytest.raises(LinkRefused):
            keys.check_token(bad, me="b", client="a", nonce="n" * 32)
    assert TOKEN_TTL_S <= 10
    # the proof a node answers with is bound to both nonces and both names
    proof = keys.proof("b", "a", "1" * 32, "2" * 32)
    assert proof != keys.proof("b", "a", "3" * 32, "2" * 32)
    assert proof != keys.proof("c", "a", "1" * 32, "2" * 32)


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"store": "redis"}, "SIDECOACH_STORE"),
        ({"store": "mongo"}, "SIDECOACH_STORE"),
        ({"redis_url": "http://x"}, "SIDECOACH_REDIS_URL"),
        ({"node_url": "127.0.0.1:9000"}, "SIDECOACH_NODE_URL"),
        ({"log_format": "xml"}, "SIDECOACH_LOG_FORMAT"),
        ({"drain_deadline_s": -1.0}, "SIDECOACH_DRAIN_DEADLINE_S"),
    ],
)
def test_bad_cluster_settings_name_their_variable(settings: dict[str, Any], names: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_cluster_settings(Config(**settings))
    assert names in refused.value.message


def test_workers_need_redis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", "2", "--data-dir", str(tmp_path)]) == 2
    assert "--workers needs a Redis URL" in capsys.readouterr().err


def test_each_worker_runs_the_same_command_with_its_node_id() -> None:
    argv = ["serve", "--workers", "2", "--port", "8443", "--demo", "--node-id", "box"]
    assert worker_argv(argv, "box-w1") == [
        "serve", "--port", "8443", "--reuse-port", "--node-id", "box-w1",
    ]  # fmt: skip
    assert worker_argv(["serve", "--workers", "--port", "80"], "h-w0")[:3] == [
        "serve", "--port", "80",
    ]  # fmt: skip
