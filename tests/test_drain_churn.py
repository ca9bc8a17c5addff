"""SIGTERM under connect/join/leave churn always ends the node (issue 22:
twice in an outside run a node was still there 10 s after SIGTERM, its last
line ``closed socket …: unhandled packet KeyError``). Runs
``scripts/bench_drain_churn.py`` (two nodes on a real redis-server; node B
is started, churned around and SIGTERM'd) a few times; the script's full
count is 50 (see the closing note of issue 22). No timing thresholds: the
bound is the script's give-up (the drain timeout and more), and every run
must have exited by itself with code 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.multinode import redis_unavailable

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(redis_unavailable() is not None, reason=str(redis_unavailable())),
]


def test_every_sigterm_under_churn_ends_the_node(tmp_path: Path) -> None:
    out = tmp_path / "churn.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_drain_churn.py"),
         "--runs", str(RUNS), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=RUNS * 60 + 60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["runs"] == RUNS
    hung = [r for r in report["results"] if r["exit_s"] is None]
    assert not hung, hung[0]["log_tail"]
    assert [r["code"] for r in report["results"]] == [0] * RUNS
    # the churn really ran around each SIGTERM
    assert all(sum(r["churn"].values()) > 0 for r in report["results"])
