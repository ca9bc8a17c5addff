"""The review page's Measures panel in Chromium against the real server: a
coach sees each measure with its definition once they are computed, and
computes them again (the progress bar shows while they are being made); an
observer's review page has no panel at all."""

from __future__ import annotations

import pytest

from testkit.browser import Opener
from testkit.server import LiveServer
from tests.browser.test_review_page import LAPTOP, recording_of
from tests.test_recording_access import record_a_lesson

pytestmark = pytest.mark.browser


@pytest.mark.slow
async def test_the_measures_panel_shows_values_and_definitions_to_a_coach(
    live_server: LiveServer, open_tab: Opener
) -> None:
    _, tokens = await record_a_lesson(live_server)
    rid = await recording_of(live_server, tokens["coach_a"])
    coach = await open_tab(f"/review/{rid}?token={tokens['coach_a']}", "measures", viewport=LAPTOP)
    await coach.wait("sidecoach.loaded")
    await coach.wait("sidecoach.measures && sidecoach.measures.status === 'done'", timeout=30)
    text = await coach.page.inner_text("#measures")
    assert "BSP per minute" in text
    assert "tallied this practice" in text  # the definition, under its value
    assert "Speech (share of time)" in text
    assert "Prompts per minute" in text  # a coach may read whispers
    await coach.screenshot("review-measures", full_page=True)
    # compute again: the panel polls until they are done once more
    await coach.page.click("#measures-recompute")
    await coach.wait("sidecoach.measures && sidecoach.measures.status === 'done'", timeout=30)

    observer = await open_tab(f"/review/{rid}?token={tokens['observer']}", "measures-observer")
    await observer.wait("sidecoach.loaded")
    assert not await observer.page.is_visible("#measures-panel")
    assert await observer.js("sidecoach.permissions.measures") is False
