"""scripts/bench_forwarding.py --quick runs end to end against Janus and
Sidecoach (recording off and on), in the bench's own network namespace.

No timing thresholds: only that every number is there and that every
subscriber of every server actually received packets.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.bench_smoke import run_quick

pytestmark = [pytest.mark.integration, pytest.mark.bench]

SERVERS = ("janus", "sidecoach", "sidecoach-rec")


def test_quick_benchmark_measures_janus_and_sidecoach(tmp_path: Path) -> None:
    if shutil.which("janus") is None or shutil.which("unshare") is None:
        pytest.skip("Janus (apt package janus) and unshare are needed")
    report, stdout = run_quick(
        "bench_forwarding.py", tmp_path, ("ffmpeg",), "ffmpeg is needed to make the benchmark clip",
        timeout=400,
    )  # fmt: skip
    assert "janus" in stdout and "sidecoach-rec" in stdout
    assert report["floor"]["floor_us_per_packet"] > 0
    path = report["path"]
    assert isinstance(path["producer_us"], float) and isinstance(path["consumer_us"], float)
    assert all(n > 0 for n in path["consumers_forwarded_packets"])
    for name in SERVERS:
        result = report["servers"][name]
        assert "error" not in result, result
        assert [lv["n"] for lv in result["levels"]] == [0, 1, 2]
        assert isinstance(result["slope_pct_per_subscriber"], float)
        assert isinstance(result["idle_cpu_pct"], float)
        for level in result["levels"]:
            assert isinstance(level["server_cpu_pct"], float | int)
            assert level["publisher_packets"] > 0
            if level["n"] == 0:
                continue
            assert level["subscriber_packets_min"] > 0, (name, level)
            assert level["latency_samples"] > 0, (name, level)
            assert level["subscribers_matched"] == level["n"], (name, level)
            assert isinstance(level["latency_ms_p50"], float)
            assert isinstance(level["latency_ms_p99"], float)
        summary = report["summary"][name]
        assert isinstance(summary["per_subscriber_vs_janus"], float), summary
        assert isinstance(summary["n0_vs_janus"], float), summary
