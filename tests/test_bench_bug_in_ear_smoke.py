"""scripts/bench_bug_in_ear.py --quick runs end to end.

No timing thresholds: only that every number is there, that whisper packets
were forwarded by the server and reached every teacher, and that cues were
delivered.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_smoke import run_quick

pytestmark = pytest.mark.integration

TIMING_KEYS = (
    "whisper_server_forward_us_p50",
    "whisper_server_forward_us_p99",
    "whisper_server_path_us_p50",
    "whisper_server_path_us_p99",
    "whisper_e2e_ms_p50",
    "whisper_e2e_ms_p99",
    "cue_ms_p50",
    "cue_ms_p99",
)


def test_quick_bug_in_ear_benchmark_delivers_whispers_and_cues(tmp_path: Path) -> None:
    report, stdout = run_quick(
        "bench_bug_in_ear.py", tmp_path, ("ffmpeg",), "ffmpeg is needed to make the Opus clip"
    )
    assert "forward p50/p99 us" in stdout and "cue p50/p99 ms" in stdout
    assert "error" not in report, report.get("error")
    assert report["settings"]["clip_unique_payloads"] == report["settings"]["clip_packets"]
    levels = report["levels"]
    assert [lv["n"] for lv in levels] == [1, 5]
    for lv in levels:
        assert lv["sessions_ready"] == lv["n"], lv
        for key in TIMING_KEYS:
            assert isinstance(lv[key], float), (key, lv)
        assert isinstance(lv["server_cpu_pct"], float | int)
        assert lv["coach_packets_sent"] > 0
        assert lv["server_packets_forwarded"] > 0
        assert lv["whisper_server_samples"] > 0
        assert lv["teacher_packets_received_min"] > 0, lv  # every teacher heard its coach
        assert lv["whisper_e2e_samples"] > 0
        assert lv["cues_sent"] > 0
        assert lv["cues_received"] > 0
        assert isinstance(lv["lost_packets"], int)
