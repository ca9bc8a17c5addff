"""scripts/bench_people.py --quick runs end to end on SQLite (and on
PostgreSQL where it is installed) and prints every number. No timing
thresholds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


def test_quick_people_benchmark_prints_its_numbers() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_people.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for line in ("sign-in -> home page", "GET /home", "GET /api/lessons?limit=100"):
        assert line in proc.stdout
