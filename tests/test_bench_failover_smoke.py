"""scripts/bench_failover.py --quick runs end to end: after kill -9 of the
worker hosting a lesson, video comes back at the coach and the whisper at
the teacher, and the pages met no join error on the way. No timing
thresholds (the script prints the times)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.multinode import redis_unavailable
from tests.bench_smoke import run_quick

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_unavailable() is not None, reason=str(redis_unavailable())),
]


def test_quick_failover_benchmark_brings_video_and_whisper_back(tmp_path: Path) -> None:
    report, stdout = run_quick("bench_failover.py", tmp_path, (), "", timeout=300)
    assert "kill -9 of the hosting worker" in stdout
    assert report["kills"] == len(report["results"]) == 2
    for run in report["results"]:
        assert run["video_s"] > 0 and run["whisper_s"] > 0
    assert report["join_errors"] == []
