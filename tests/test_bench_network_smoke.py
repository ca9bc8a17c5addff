"""scripts/bench_network.py --quick runs end to end in the test's private
network namespace. No timing thresholds: every scenario was measured, the
coach decoded frames in each window, the shaped direction (and only it)
lost packets, the ratios against the baseline are there, and video and
whisper came back after a cut."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.netns import unavailable_reason

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


def test_quick_network_benchmark_measures_every_scenario(tmp_path: Path) -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_network.py"), "--quick", "--json", str(out),
         "--width", "320", "--height", "240"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert "error" not in report, report["error"]
    assert [r["direction"] for r in report["runs"]] == [None, "up", "down", "down"]
    base, up, down, jitter = report["runs"]
    assert jitter["jitter_ms"] > 0 and jitter["whisper"]["dropped_on_downlink"] > 0
    for run in report["runs"]:
        assert run["video"]["frames"] > 0, run
        assert run["whisper"]["packets_received"] > 0, run
    assert base["video"]["dropped_on_uplink"] == base["whisper"]["dropped_on_downlink"] == 0
    assert up["video"]["dropped_on_uplink"] > 0 and up["whisper"]["dropped_on_downlink"] == 0
    assert down["whisper"]["dropped_on_downlink"] > 0 and down["video"]["dropped_on_uplink"] == 0
    assert set(up["ratios_vs_baseline"]) == {"fps", "longest_gap_ms", "frozen_ms"}
    assert "Ratio uplink 5% / baseline" in proc.stdout
    # after a 5 s cut of the teacher's link, the coach's video and the
    # teacher's whisper both came back by themselves
    (cut,) = report["cuts"]
    assert cut["video_back_after_s"] is not None and cut["whisper_back_after_s"] is not None
    assert cut["coach_frozen_s"] >= cut["cut_s"]
