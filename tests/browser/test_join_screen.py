"""The coach's and observer's join screen (issue 21, part 6): the lesson,
who is there, the coach's microphone with a live level meter and headset
advice, and Join, whose click is the gesture that lets the classroom's
sound play at once.

The sound test runs Chromium with its own autoplay policy (no
``--autoplay-policy`` override) and reads the coach's page only through a
CDP session's ``Runtime.evaluate`` (no user gesture): Playwright's own
``evaluate`` counts as one, and would unlock sound before the click."""

from __future__ import annotations

import json
from typing import Any

import pytest

from testkit.browser import CHROMIUM, SILENCE, Opener, Tab, launched_chromium, new_tab, page_errors
from testkit.server import LiveServer

pytestmark = pytest.mark.browser


def join_path(server: LiveServer, session_id: str, role: str, **kw: object) -> str:
    return "/join?token=" + server.invite(session_id, role, **kw)


class NoGesture:
    """Reads a page through CDP (``Runtime.evaluate`` without a user
    gesture) and clicks with real mouse events."""

    def __init__(self, cdp: Any) -> None:
        self.cdp = cdp

    async def js(self, expression: str) -> Any:
        reply = await self.cdp.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def wait(self, expression: str, timeout_s: float = 30.0) -> Any:
        """Poll ``expression`` in the page (one evaluate, the loop inside)."""
        value = await self.js(
            f"""(async () => {{
                const end = performance.now() + {timeout_s * 1000};
                while (performance.now() < end) {{
                    try {{
                        const v = ({expression});
                        if (v) return typeof v === 'object' ? true : v;
                    }} catch (e) {{}}
                    await new Promise((r) => setTimeout(r, 50));
                }}
                return null;
            }})()"""
        )
        assert value, f"`{expression}` not true within {timeout_s:.0f}s"
        return value

    async def click(self, selector: str) -> None:
        box = await self.js(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            await self.cdp.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
            )


#: in the page: from the Join click, the first picture and the first sound
#: the coach hears (the classroom's <audio> playing, unmuted, its stream
#: above silence on an AnalyserNode), in ms
HEARD = """(async () => {
    const clicked = window.sidecoach.joinClickedAt;
    const out = {frameMs: null, soundMs: null, peak: 0};
    let ctx = null, analyser = null, buf = null;
    const end = performance.now() + 30000;
    while (performance.now() < end && (out.frameMs === null || out.soundMs === null)) {
        const video = document.querySelector('video.remote-video');
        if (out.frameMs === null && video && video.videoWidth > 0) {
            out.frameMs = performance.now() - clicked;
        }
        const audio = document.querySelector('audio.remote-audio[data-source=mic]');
        if (!analyser && audio && audio.srcObject && audio.srcObject.getAudioTracks().length) {
            ctx = new AudioContext();
            analyser = ctx.createAnalyser();
            analyser.fftSize = 1024;
            ctx.createMediaStreamSource(audio.srcObject).connect(analyser);
            buf = new Float32Array(analyser.fftSize);
        }
        if (analyser && out.soundMs === null && !audio.paused && !audio.muted) {
            analyser.getFloatTimeDomainData(buf);
            for (const v of buf) out.peak = Math.max(out.peak, Math.abs(v));
            if (out.peak > SILENCE) out.soundMs = performance.now() - clicked;
        }
        await new Promise((r) => setTimeout(r, 10));
    }
    const audio = document.querySelector('audio.remote-audio[data-source=mic]');
    out.paused = audio ? audio.paused : null;
    out.ctx = ctx ? ctx.state : null;
    if (ctx) await ctx.close();
    return out;
})()"""


#: a coach who refused the microphone (or has none): the page captures
#: nothing, so Chromium's exemption for capturing pages does not apply
NO_MICROPHONE = """navigator.mediaDevices.getUserMedia = () =>
    Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"""


async def join_and_listen(
    browser: Any, url: str, name: str, **tab: Any
) -> tuple[Tab, dict[str, Any]]:
    """A coach page on its join screen, clicked Join (with nothing before
    it that counts as a gesture): when it saw the first frame and heard the
    classroom, in ms from the click."""
    coach = await new_tab(browser, url, name, join_screen=True, **tab)
    page = NoGesture(await coach.page.context.new_cdp_session(coach.page))
    here = await page.wait(
        "document.querySelector('#join-here').textContent.includes('The classroom is live')"
        " && document.querySelector('#join-here').textContent"
    )
    assert "the teacher (Ms. Rivera)" in here, here
    assert "Use a headset" in await page.js("document.querySelector('.headset-advice').textContent")
    assert await page.js("document.querySelector('.stage').hidden && sidecoach.state === 'idle'")
    assert await page.js("navigator.userActivation.hasBeenActive") is False
    await page.click("#join")
    heard = await page.js(HEARD.replace("SILENCE", repr(SILENCE)))
    assert heard["soundMs"] is not None, f"{name} hears nothing after Join: {heard}"
    assert heard["frameMs"] is not None, f"{name}: no picture after Join: {heard}"
    assert heard["paused"] is False
    assert await page.js("sidecoach.audioBlocked") is False
    assert await page.js("document.querySelector('#unblock-audio').hidden")
    assert await page.js("document.querySelector('#join-screen').hidden")
    print(
        f"\n{name}: Join click -> first frame {heard['frameMs']:.0f} ms,"
        f" -> classroom audio energy > {SILENCE} {heard['soundMs']:.0f} ms"
        f" (peak {heard['peak']:.2f})"
    )
    return coach, heard


async def test_a_coach_who_clicks_join_hears_the_classroom(live_server: LiveServer) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    session = await live_server.create_session("Fractions, period 3")
    url = live_server.url
    async with launched_chromium(autoplay_override=False) as browser:
        teacher_url = url + join_path(live_server, session.id, "teacher")
        teacher = await new_tab(browser, teacher_url, "teacher")
        await teacher.wait("window.sidecoach && sidecoach.state === 'joined'", timeout=30)
        await teacher.page.click("#go-live")
        await teacher.wait("sidecoach.live === 'live'", timeout=40)

        # this browser keeps sound off without a gesture: a page that joins
        # with no click (the screen skipped) gets the fallback, and stays silent
        observer_url = url + join_path(live_server, session.id, "observer")
        skipped = await new_tab(browser, observer_url, "skipped")
        quiet = NoGesture(await skipped.page.context.new_cdp_session(skipped.page))
        await quiet.wait("window.sidecoach && sidecoach.audioBlocked")
        assert await quiet.js("navigator.userActivation.hasBeenActive") is False
        assert await quiet.js("!document.querySelector('#unblock-audio').hidden")
        assert await quiet.js("document.querySelector('audio[data-source=mic]').paused")

        # the Join click is the gesture: a coach without a microphone (so
        # not exempted as a capturing page) hears the classroom at once
        no_mic, _ = await join_and_listen(
            browser,
            url + join_path(live_server, session.id, "coach", name="Bo"),
            "coach-no-mic",
            init=NO_MICROPHONE,
        )
        # and the usual coach, microphone on
        coach, _ = await join_and_listen(
            browser, url + join_path(live_server, session.id, "coach", name="Ana"), "coach"
        )
        await coach.screenshot("join-screen-coach-joined")

        # where autoplay was refused, the fallback still works: one tap
        await quiet.click("#unblock-audio")
        await quiet.wait(
            "!sidecoach.audioBlocked"
            " && !document.querySelector('audio.remote-audio[data-source=mic]').paused"
        )
        errors = page_errors(teacher, coach, no_mic, skipped)
        assert [e for e in errors if "Permission denied" not in e] == []


async def test_the_coach_microphone_choice_is_remembered_after_a_reload(
    live_server: LiveServer, open_tab: Opener
) -> None:
    session = await live_server.create_session()
    coach: Tab = await open_tab(
        join_path(live_server, session.id, "coach", name="Ana"), "coach", join_screen=True
    )
    await coach.wait("document.querySelector('#join-mic-select').options.length >= 2")
    await coach.wait("sidecoach.micTrackDevice")
    # the meter moves with the microphone (Chromium's fake one beeps)
    await coach.wait(
        "parseFloat(document.querySelector('#join-mic-meter')"
        ".style.getPropertyValue('--level')) > 0.05"
    )
    options = await coach.js(
        "[...document.querySelector('#join-mic-select').options].map((o) => [o.value, o.text])"
    )
    first = await coach.js("sidecoach.micTrackDevice")
    chosen, label = next((v, t) for v, t in options if v != first and v != "default")
    await coach.page.select_option("#join-mic-select", chosen)
    await coach.wait("sidecoach.micTrackDevice === arg", arg=chosen)

    await coach.page.reload()
    await coach.wait("window.sidecoach && sidecoach.micTrackDevice === arg", arg=chosen)
    shown = await coach.js("document.querySelector('#join-mic-select').selectedOptions[0].text")
    assert shown == label, (shown, label)
    assert await coach.page.is_visible("#join-screen")

    # Join: the whisper goes out on the chosen microphone
    await coach.page.click("#join")
    await coach.wait("sidecoach.whisperPublished", timeout=30)
    assert await coach.js("sidecoach.micTrackDevice") == chosen
    assert not await coach.page.is_visible("#join-screen")
    assert page_errors(coach) == []


async def test_the_observer_join_screen_has_no_microphone_and_can_be_skipped(
    live_server: LiveServer, open_tab: Opener
) -> None:
    session = await live_server.create_session()
    path = join_path(live_server, session.id, "observer")
    observer = await open_tab(path, "observer", join_screen=True)
    await observer.wait("window.sidecoach && sidecoach.joinScreen")
    await observer.wait("document.querySelector('#join-here').textContent.includes('Nobody')")
    assert await observer.js("document.querySelector('#join-mic-select')") is None
    assert await observer.js("sidecoach.state") == "idle"
    # "Skip this screen next time": the next visit joins at once…
    await observer.page.check("#join-skip")
    await observer.page.click("#join")
    await observer.wait("sidecoach.state === 'joined'")
    assert await observer.js("sidecoach.audioUnlocked")
    await observer.page.reload()
    await observer.wait("window.sidecoach && sidecoach.state === 'joined'")
    assert not await observer.page.is_visible("#join-screen")
    # …until asked for again
    await observer.page.click("#join-screen-again")
    await observer.page.reload()
    await observer.wait("window.sidecoach && sidecoach.joinScreen")
    assert await observer.page.is_visible("#join-screen")
    assert await observer.js("sidecoach.state") == "idle"
    assert page_errors(observer) == []
