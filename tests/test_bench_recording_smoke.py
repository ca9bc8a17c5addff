"""scripts/bench_recording.py --quick runs end to end.

No timing thresholds: only that every configuration was measured, that the
derived costs are there, and that every recording was finalized and its
track files decode (ffprobe) with frames in them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_smoke import run_quick

pytestmark = pytest.mark.integration


def test_quick_recording_benchmark_measures_and_records(tmp_path: Path) -> None:
    report, stdout = run_quick(
        "bench_recording.py",
        tmp_path,
        ("ffmpeg", "ffprobe"),
        "ffmpeg and ffprobe are needed for the clips and the file check",
    )
    assert "Ratio recorded video track / forwarding Consumer" in stdout
    assert "error" not in report, report.get("error")
    runs = report["runs"]
    assert [r["config"] for r in runs] == ["A", "B", "B2", "C", "Aa", "D"]
    for run in runs:
        assert "error" not in run, run
        assert isinstance(run["server_cpu_pct"], float | int)
        assert isinstance(run["server_cpu_pct_schedstat"], float | int)
        assert run["publisher"]["video"]["packets_per_s"] > 0, run
    assert runs[1]["subscriber_packets_per_s"] > 0
    assert runs[2]["subscriber_packets_per_s"] > 0
    for run in (runs[3], runs[5]):
        assert run["recorded_bytes_per_s"] > 0, run
    summary = report["summary"]
    keys = ("forwarding_consumer", "second_forwarding_consumer", "recorded_video_track")
    for key in (*keys, "recorded_audio_track"):
        assert isinstance(summary["derived_cpu_pct"][key]["mean"], float | int), key
        assert isinstance(summary["derived_cpu_pct_schedstat"][key]["mean"], float | int), key
    recordings = report["recordings"]
    assert [(r["config"], len(r["tracks"])) for r in recordings] == [("C", 1), ("D", 2)]
    for rec in recordings:
        assert rec["state"] == "finalized", rec
        assert rec["ok"], rec
        for track in rec["tracks"]:
            assert track["ffprobe_frames"] > 0, track
            assert track["frames_received"] > 0, track
