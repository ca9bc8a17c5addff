"""Shared fixtures: a real Sidecoach server (``testkit/server.py``) per test,
network namespaces (``testkit/netns.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from testkit.netns import Netlab, unavailable_reason
from testkit.server import LiveServer, make_config, running_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Benchmark smoke runs (``tests/test_bench_*``) are marked ``bench``."""
    for item in items:
        if Path(str(item.fspath)).name.startswith("test_bench_"):
            item.add_marker(pytest.mark.bench)


@pytest.fixture
async def live_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with running_server(make_config(tmp_path)) as server:
        yield server


@pytest.fixture
def netlab(tmp_path: Path) -> Iterator[Netlab]:
    """Network namespaces and veth links (testkit/netns.py), torn down after
    the test; the test is skipped (with the reason) where they cannot be made."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")
    with Netlab(tmp_path) as lab:
        yield lab
