"""scripts/bench_capacity.py --quick runs end to end, one node and two
workers, then one session's shape on Janus: every number is there, video
reached every coach (and every Janus subscriber), whispers and cues were
timed inside the servers. No timing thresholds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from testkit.multinode import redis_unavailable
from tests.bench_smoke import run_quick

pytestmark = [
    pytest.mark.integration,
    pytest.mark.bench,
    pytest.mark.skipif(redis_unavailable() is not None, reason=str(redis_unavailable())),
    pytest.mark.skipif(shutil.which("janus") is None, reason="Janus (apt package janus) missing"),
]

NUMBERS = (
    "server_cpu_pct", "server_cpu_pct_per_session", "sessions_per_core", "load_cpu_pct",
    "whisper_server_ms_p50", "whisper_server_ms_p99", "cue_server_ms_p50", "cue_server_ms_p99",
    "server_loop_lag_ms_p99", "rss_mb_per_session", "worst_loss_pct", "min_fps",
)  # fmt: skip


def test_quick_capacity_run_reports_every_number(tmp_path: Path) -> None:
    report, stdout = run_quick(
        "bench_capacity.py", tmp_path, ("ffmpeg",), "ffmpeg is needed for the clips", timeout=300
    )
    assert "capacity vs 1 node" in stdout
    janus = report["janus"]
    assert "error" not in janus, janus
    assert janus["video_packets_min"] > 0 and isinstance(janus["server_cpu_pct"], float)
    assert report["per_session_vs_janus"], report.get("per_session_vs_janus")
    assert [c["name"] for c in report["configs"]] == ["1 node", "--workers 2"]
    for config in report["configs"]:
        assert "error" not in config, config.get("error")
        assert [lv["n"] for lv in config["levels"]] == [2]
        for lv in config["levels"]:
            assert lv["sessions_ready"] == lv["n"], lv
            assert lv["subscribers"] == 3 * lv["n"], lv  # three coaches each got the video
            assert lv["whisper_server_samples"] > 0 and lv["cues_timed"] > 0, lv
            for key in NUMBERS:
                assert isinstance(lv[key], float | int), (key, lv)
