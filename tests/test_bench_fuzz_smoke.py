"""scripts/fuzz_signaling.py --quick runs end to end: every hostile message
got a reply or a close, the server logged no traceback, and the legitimate
coach kept decoding the teacher's video. No timing thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_smoke import run_quick

pytestmark = pytest.mark.integration


def test_quick_fuzz_run_reports_every_number(tmp_path: Path) -> None:
    report, stdout = run_quick("fuzz_signaling.py", tmp_path, (), "")
    assert "Replies by code" in stdout
    assert "error" not in report, report.get("error")
    assert report["messages"] >= 3000
    assert report["no_reply"] == 0
    assert report["tracebacks"] == 0
    codes = report["replies_by_code"]
    for code in ("reserved_event", "rate_limited", "unauthorized", "forbidden", "closed"):
        assert codes.get(code, 0) > 0, (code, codes)
    assert report["coach_fps_during"] > 0 and report["coach_fps_after"] > 0
    for key in ("server_rss_mb_before", "server_rss_mb_after", "healthz_ms_p50", "healthz_ms_p99"):
        assert isinstance(report[key], float), key
