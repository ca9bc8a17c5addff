"""Browser tests: Debian's Chromium, headless, driven by Playwright's async
API, against a real Sidecoach server on 127.0.0.1 (same event loop).

Never run ``playwright install``: the browser is /usr/bin/chromium. Without
it every browser test is skipped. Screenshots go to
``test-artifacts/screenshots/`` (printed at the end of the run).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pytest_asyncio import is_async_test

from testkit.browser import CHROMIUM, SCREENSHOT_DIR, Opener, Tab, launched_chromium, new_tab
from testkit.server import LiveServer, make_config, running_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    session_loop = pytest.mark.asyncio(loop_scope="session")
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
        # one Chromium for the whole run (``browser``), so the browser tests
        # run in the session's event loop, with a fresh context per test
        if is_async_test(item) and here in Path(str(item.fspath)).parents:
            item.add_marker(session_loop, append=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    shots = list(SCREENSHOT_DIR.glob("*.png")) if SCREENSHOT_DIR.is_dir() else []
    if shots:
        terminalreporter.write_sep("-", "browser screenshots")
        terminalreporter.write_line(f"{len(shots)} screenshots in {SCREENSHOT_DIR}")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _chromium() -> AsyncIterator[Any]:
    """One Chromium for the run (started at the first test that needs it)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    async with launched_chromium() as b:
        yield b


@pytest_asyncio.fixture(loop_scope="session")
async def browser(_chromium: Any) -> AsyncIterator[Any]:
    """The run's Chromium; each test opens its pages in fresh contexts
    (``new_tab``), and whatever a test left open is closed after it."""
    before = set(_chromium.contexts)
    yield _chromium
    for context in set(_chromium.contexts) - before:
        with contextlib.suppress(Exception):  # closed by the test already
            await context.close()


@pytest_asyncio.fixture(loop_scope="session")
async def live_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """As ``tests/conftest.py``'s, in the browser tests' (session) event loop."""
    async with running_server(make_config(tmp_path)) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def open_tab(browser: Any, live_server: LiveServer) -> AsyncIterator[Opener]:
    """open_tab(path_or_url, name=..., viewport=...) -> Tab in a fresh context."""
    tabs: list[Tab] = []

    async def open_(
        path: str, name: str = "page", viewport: dict[str, int] | None = None, **ctx: Any
    ) -> Tab:
        url = path if path.startswith("http") else live_server.url + path
        tab = await new_tab(browser, url, name, viewport, **ctx)
        tabs.append(tab)
        return tab

    yield open_
    for tab in tabs:
        with contextlib.suppress(Exception):  # already closed by the test
            await tab.page.context.close()
    await asyncio.sleep(0)


