"""scripts/bench_closed_sockets.py --quick runs end to end: every client
that ignores the close is cut by the server, and afterwards no token-less
socket and no websocket is left counted. No timing thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_smoke import run_quick

pytestmark = pytest.mark.integration


def test_quick_closed_sockets_benchmark_leaves_nothing_open(tmp_path: Path) -> None:
    report, stdout = run_quick("bench_closed_sockets.py", tmp_path, (), "")
    assert "clients ignoring the close" in stdout
    assert report["clients"] == 20
    assert report["cut_by_server"] == report["admitted"] > 0
    assert report["after"]["unauthenticated"] == report["after"]["websockets"] == 0
