"""scripts/bench_forwarding.py --quick runs end to end against both servers.

No timing thresholds: only that every number is there and that every
subscriber of both servers actually received packets.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_smoke import run_quick

pytestmark = pytest.mark.integration


def test_quick_benchmark_measures_both_servers(tmp_path: Path) -> None:
    report, stdout = run_quick(
        "bench_forwarding.py", tmp_path, ("ffmpeg",), "ffmpeg is needed to make the benchmark clip"
    )
    assert "Sidecoach" in stdout and "baseline" in stdout
    for name in ("sidecoach", "baseline"):
        result = report["servers"][name]
        assert "error" not in result, result
        assert [lv["n"] for lv in result["levels"]] == [1, 2]
        assert isinstance(result["slope_pct_per_subscriber"], float)
        for level in result["levels"]:
            assert isinstance(level["server_cpu_pct"], float | int)
            assert level["publisher_packets"] > 0
            assert level["subscriber_packets_min"] > 0, (name, level)
            assert level["latency_samples"] > 0, (name, level)
            assert level["subscribers_matched"] == level["n"], (name, level)
            assert isinstance(level["latency_ms_p50"], float)
            assert isinstance(level["latency_ms_p99"], float)
