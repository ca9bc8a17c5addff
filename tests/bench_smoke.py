"""Shared by the benchmark smoke tests: run a ``scripts/`` benchmark with
``--quick`` and read the numbers it wrote with ``--json``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_quick(
    script: str, tmp_path: Path, tools: tuple[str, ...], why: str, timeout: float = 120
) -> tuple[dict[str, Any], str]:
    """Run ``scripts/<script> --quick --json ...`` (its clips cached in
    ``tmp_path``) and return the JSON report and the printed output; the
    script must exit 0. Skips (with ``why``) if one of ``tools`` is missing."""
    if any(shutil.which(tool) is None for tool in tools):
        pytest.skip(why)
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / script),
            "--quick",
            "--json",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report: dict[str, Any] = json.loads(out.read_text())
    return report, proc.stdout
