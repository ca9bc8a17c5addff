"""Chromium pages for tests and benchmarks: Debian's ``/usr/bin/chromium``
driven by Playwright (never ``playwright install``), one context per page,
console errors collected, screenshots kept in ``test-artifacts/``."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("SIDECOACH_CHROMIUM", "/usr/bin/chromium"))
#: keeps every RTCPeerConnection a page makes in ``window.__pcs`` (test-only,
#: injected as ``new_tab(init=...)``, so no page needs to expose its own)
KEEP_PEER_CONNECTIONS = """(() => {
    const Native = window.RTCPeerConnection;
    window.__pcs = [];
    window.RTCPeerConnection = class extends Native {
        constructor(...args) { super(...args); window.__pcs.push(this); }
    };
})();"""
#: the coach's and observer's join screen skipped ("Skip this screen next time
#: on this browser"): what every test that does not test the join screen wants
SKIP_JOIN_SCREEN = "try { localStorage.setItem('sidecoach.joinScreen', 'skip'); } catch (e) {}"
#: Chromium's own autoplay policy (sound only after a user gesture) instead
AUTOPLAY_OVERRIDE = "--autoplay-policy=no-user-gesture-required"
#: the loudest sample of a silent track (an AnalyserNode peak above it is sound)
SILENCE = 0.02
REPO = Path(__file__).resolve().parents[1]
SCREENSHOT_DIR = REPO / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--headless=new",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    AUTOPLAY_OVERRIDE,
    # a page in a background tab must keep its timers and media running
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]
#: console messages that are expected (e.g. a refused media element play)
IGNORED_CONSOLE = re.compile(r"favicon\.ico|ERR_INTERNET_DISCONNECTED|net::ERR_")



@dataclass
class Tab:
    """One participant's page, in its own browser context."""

    page: Any
    name: str
    errors: list[str] = field(default_factory=list)

    async def js(self, expression: str, arg: Any = None) -> Any:
        return await self.page.evaluate(f"(arg) => ({expression})", arg)

    async def wait(self, expression: str, timeout: float = 15.0, arg: Any = None) -> Any:
        """Poll a JS expression (over ``window.sidecoach`` etc.) until truthy."""
        try:
            # a function, not a bare expression: Playwright evals bare
            # expressions in the page, which the pages' CSP (rightly) forbids
            handle = await self.page.wait_for_function(
                f"(arg) => ({expression})", arg=arg, timeout=timeout * 1000, polling=50
            )
        except Exception as exc:  # playwright's TimeoutError: add what the page knows
            state = await self.debug_state()
            raise AssertionError(
                f"{self.name}: `{expression}` not true within {timeout:.0f}s ({exc!r})"
                f"; page state: {state}"
            ) from exc
        return await handle.json_value()

    async def debug_state(self) -> str:
        try:
            state = await self.page.evaluate(
                "() => { const s = window.sidecoach; if (!s) return null;"
                " const o = {}; for (const k of Object.keys(s)) {"
                " if (k !== 'socket') { try { o[k] = s[k]; } catch (e) { o[k] = String(e); } } }"
                " return o; }"
            )
            return json.dumps(state)[:3000] + f" errors={self.errors}"
        except Exception as exc:  # the page may be gone
            return f"(unavailable: {exc})"

    async def screenshot(self, name: str, full_page: bool = False) -> Path:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=full_page)
        return path

    async def audio_peak(self, selector: str, seconds: float = 2.0) -> float:
        """Max absolute sample seen by a WebAudio AnalyserNode on the stream
        of the media element matching ``selector``, over ``seconds``."""
        peak: float = await self.page.evaluate(
            """async ([selector, ms]) => {
                const el = document.querySelector(selector);
                if (!el || !el.srcObject) return -1;
                const ctx = new AudioContext();
                await ctx.resume();
                const src = ctx.createMediaStreamSource(el.srcObject);
                const an = ctx.createAnalyser();
                an.fftSize = 2048;
                src.connect(an);
                const buf = new Float32Array(an.fftSize);
                let peak = 0;
                const end = performance.now() + ms;
                while (performance.now() < end) {
                    an.getFloatTimeDomainData(buf);
                    for (const v of buf) peak = Math.max(peak, Math.abs(v));
                    await new Promise((r) => setTimeout(r, 20));
                }
                src.disconnect();
                await ctx.close();
                return peak;
            }""",
            [selector, seconds * 1000],
        )
        return peak

    async def video_playing(self, selector: str = "video.remote-video") -> bool:
        """Every matching video has decoded frames and its time advances."""
        return bool(
            await self.page.evaluate(
                """async (selector) => {
                    const vids = [...document.querySelectorAll(selector)];
                    if (!vids.length) return false;
                    const t0 = vids.map((v) => v.currentTime);
                    await new Promise((r) => setTimeout(r, 500));
                    return vids.every((v, i) => v.videoWidth > 0 && v.currentTime > t0[i]);
                }""",
                selector,
            )
        )


Opener = Callable[..., Awaitable[Tab]]


@contextlib.asynccontextmanager
async def launched_chromium(
    executable: Path | str = CHROMIUM,
    extra_args: Sequence[str] = (),
    *,
    autoplay_override: bool = True,
) -> AsyncIterator[Any]:
    """Chromium (``executable`` may be a wrapper, e.g. one running it in a
    network namespace) with the test flags plus ``extra_args``;
    ``autoplay_override=False``: sound plays only after a user gesture, as
    in a user's browser."""
    from playwright.async_api import async_playwright

    args = [a for a in CHROMIUM_ARGS if autoplay_override or a != AUTOPLAY_OVERRIDE]
    async with async_playwright() as pw:
        b = await pw.chromium.launch(
            executable_path=str(executable), args=[*args, *extra_args], headless=True
        )
        try:
            yield b
        finally:
            await b.close()


async def new_tab(
    browser: Any,
    url: str,
    name: str,
    viewport: dict[str, int] | None = None,
    init: str | None = None,
    join_screen: bool = False,
    **ctx: Any,
) -> Tab:
    """A page at ``url`` in a fresh browser context, collecting console
    errors; ``init`` is a script run before the page's own. A coach's or
    observer's page joins at once unless ``join_screen``: then it shows its
    join screen until Join is clicked."""
    context = await browser.new_context(viewport=viewport or {"width": 1280, "height": 860}, **ctx)
    if not join_screen:
        await context.add_init_script(SKIP_JOIN_SCREEN)
    if init:
        await context.add_init_script(init)
    page = await context.new_page()
    tab = Tab(page, name)

    def on_console(msg: Any) -> None:
        text = f"{msg.text} ({msg.location.get('url', '')})"
        if msg.type == "error" and not IGNORED_CONSOLE.search(text):
            tab.errors.append(text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: tab.errors.append(f"pageerror: {exc}"))
    await page.goto(url)
    return tab


async def teacher_gone_live(
    browser: Any, base_url: str, teacher_token: str, **tab_options: Any
) -> Tab:
    """A teacher page at ``base_url`` that joined and went live
    (``tab_options`` go to ``new_tab``)."""
    teacher = await new_tab(
        browser, f"{base_url}/join?token={teacher_token}", "teacher", **tab_options
    )
    await teacher.wait("window.sidecoach && sidecoach.state === 'joined'", timeout=30)
    await teacher.page.click("#go-live")
    await teacher.wait("sidecoach.live === 'live'", timeout=60)
    return teacher


async def teacher_live_and_coach_watching(
    browser: Any, base_url: str, teacher_token: str, coach_token: str, **tab_options: Any
) -> tuple[Tab, Tab]:
    """A teacher page at ``base_url`` gone live, and a coach page playing
    its camera (``tab_options`` go to ``new_tab``)."""
    teacher = await teacher_gone_live(browser, base_url, teacher_token, **tab_options)
    coach = await new_tab(browser, f"{base_url}/join?token={coach_token}", "coach", **tab_options)
    await coach.wait("document.querySelector('video.remote-video')?.videoWidth > 0", timeout=40)
    assert await coach.video_playing()
    return teacher, coach


def page_errors(*tabs: Tab) -> list[str]:
    return [f"{t.name}: {e}" for t in tabs for e in t.errors]
