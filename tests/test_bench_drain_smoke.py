"""scripts/bench_drain.py --quick runs end to end: a SIGTERM'd server with
live recorded sessions exits cleanly with every recording finalized.
No timing thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_smoke import run_quick

pytestmark = pytest.mark.integration


def test_quick_drain_benchmark_finalizes_every_recording(tmp_path: Path) -> None:
    report, stdout = run_quick(
        "bench_drain.py", tmp_path, ("ffmpeg",), "ffmpeg is needed for the clips"
    )
    assert "SIGTERM drain" in stdout
    assert [r["sessions"] for r in report["runs"]] == [1, 2]
    for run in report["runs"]:
        assert run["exit_code"] == 0
        assert run["recordings"] == run["sessions"] == run["finalized"]
        assert run["drain_s"] is not None and run["recorded_mb"] > 0
