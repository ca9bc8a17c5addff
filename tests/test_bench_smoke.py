"""scripts/bench_forwarding.py --quick runs end to end against both servers.

No timing thresholds: only that every number is there and that every
subscriber of both servers actually received packets.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_measures_both_servers(tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is needed to make the benchmark clip")
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_forwarding.py"),
            "--quick",
            "--json",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert "Sidecoach" in proc.stdout and "baseline" in proc.stdout
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
