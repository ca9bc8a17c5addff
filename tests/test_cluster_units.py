"""Where a new lesson goes, and the settings of several nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.cli import main
from server.cluster.directory import NodeInfo
from server.cluster.node import ClusterNode
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


def test_a_new_lesson_goes_to_the_node_with_fewest_lessons_here_on_a_tie() -> None:
    assert cluster("a", node("b", sessions=1), mine=node("a", sessions=2))._choose() == "b"
    assert cluster("a", node("b", sessions=2), mine=node("a", sessions=2))._choose() == "a"
    assert cluster("a", node("b"), node("c"), mine=node("a", sessions=1))._choose() in {"b", "c"}


def test_busy_and_draining_nodes_get_no_new_lessons() -> None:
    busy = cluster("a", node("b", sessions=5), mine=node("a", cpu=95.0))
    assert busy._choose() == "b"
    all_busy = cluster("a", node("b", sessions=5, cpu=90.0), mine=node("a", cpu=95.0))
    assert all_busy._choose() == "a"  # fewest lessons, when every node is busy
    draining = cluster("a", node("b", sessions=9), mine=node("a", draining=True))
    assert draining._choose() == "b"
    everyone = cluster("a", node("b", draining=True), mine=node("a", draining=True))
    with pytest.raises(ServerDraining):
        everyone._choose()


def test_placements_count_until_the_next_heartbeat() -> None:
    c = cluster("a", node("b"), node("c"), mine=node("a", sessions=1))
    first = c._choose()
    c._placed[first] = 1
    assert c._choose() not in {first, "a"}


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
