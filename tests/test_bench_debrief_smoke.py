"""scripts/bench_debrief.py --quick runs end to end: three Chromium members
follow a driver, in both sync modes, and every number is measured. No
timing thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_smoke import run_quick

pytestmark = pytest.mark.integration


def test_quick_debrief_benchmark_measures_drift(tmp_path: Path) -> None:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Chromium is needed")
    report, stdout = run_quick(
        "bench_debrief.py", tmp_path, ("ffmpeg",), "ffmpeg is needed for the clips", timeout=240
    )
    assert "Sidecoach / naive" in stdout
    assert [r["mode"] for r in report["runs"]] == ["naive", "sidecoach"]
    for run in report["runs"]:
        assert run["commands"] >= 2
        assert run["all"]["samples"] > 0 and run["all"]["spread_p95_ms"] is not None
