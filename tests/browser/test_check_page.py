"""The pre-lesson check (/check) in a real Chromium: on this machine it
finds a working camera, microphone and way to the server and plays a test
whisper on the chosen output; from a school whose firewall blocks UDP it
says which way works (TURN over TCP), names a relay that refuses the
server's credentials, and says when there is no route at all.

School topology (testkit/netns.py), as in test_turn_relay.py:

    school ns: Chromium 198.18.1.2 --veth-- 198.18.1.1 this ns: Sidecoach, coturn
    school firewall: no UDP out at all
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testkit.browser import CHROMIUM, Opener, Tab, launched_chromium, new_tab, page_errors
from testkit.coturn import TURNSERVER, coturn
from testkit.netns import Netlab
from testkit.procs import free_port, running
from testkit.server import make_config, running_server

pytestmark = pytest.mark.browser

TURN_SECRET = "the-schools-turn-secret-for-the-check-" + "c" * 16
RELAY_REFUSED = (
    "The school's relay refused our credentials: ask your admin to check SIDECOACH_TURN_SECRET."
)


async def finished(tab: Tab) -> dict[str, Any]:
    """The check's report once every automatic check has a verdict."""
    await tab.wait("window.sidecoach && sidecoach.done", timeout=60)
    report: dict[str, Any] = await tab.js(
        "({verdicts: sidecoach.verdicts, paths: sidecoach.paths, lesson: sidecoach.lesson,"
        " timings: sidecoach.timings, text: sidecoach.report})"
    )
    return report


@pytest.mark.slow
async def test_the_check_finds_this_machine_ready_and_plays_a_test_whisper(
    open_tab: Opener,
) -> None:
    tab = await open_tab("/check?back=/lessons", "check")
    report = await finished(tab)
    v = report["verdicts"]
    for name in ("camera", "microphone", "signaling", "connection", "rtt", "upload"):
        assert v[name]["status"] == "green", (name, v[name], report["text"])
    assert "UDP direct" in v["connection"]["words"]
    assert report["paths"]["direct"]["media"], report["paths"]  # the server received it
    assert report["lesson"]["uploadKbps"] > 0, report["lesson"]
    print(f"\n/check on loopback: full report {report['timings']['reportMs']} ms after opening")
    # the earpiece waits for the person: play a whisper on the chosen output
    assert v["earpiece"]["status"] == "amber"
    await tab.page.click("#play-whisper")
    await tab.wait("sidecoach.whispersPlayed === 1 && !document.querySelector('#heard').hidden")
    chosen = await tab.js("document.querySelector('#output-select').value")
    assert await tab.js("sidecoach.sinkId") == chosen
    await tab.page.click("#heard-yes")
    await tab.wait("sidecoach.verdicts.earpiece.status === 'green'")
    assert await tab.js("document.querySelector('#back-link').getAttribute('href')") == "/lessons"
    await tab.screenshot("check-ready")
    assert page_errors(tab) == []


async def _check_from_school(
    netlab: Netlab, tmp_path: Path, *, relay: str | None
) -> dict[str, Any]:
    """The check's report on a Chromium behind a UDP-blocking school
    firewall; ``relay``: None (no TURN), "ok" or "wrong-secret"."""
    if not CHROMIUM.exists() or not Path(TURNSERVER).exists():
        pytest.skip("needs /usr/bin/chromium and coturn's turnserver")
    school = netlab.namespace("school")
    link = netlab.link(None, school, subnet=1)
    school.block_udp()
    turn_port = free_port(link.a_ip)
    settings: dict[str, Any] = {"host": link.a_ip, "ice_listen_ips": (link.a_ip,)}
    if relay is not None:
        sidecoach_secret = TURN_SECRET if relay == "ok" else "not-" + TURN_SECRET
        settings |= {
            "turn_secret": sidecoach_secret,
            "turn_urls": (
                f"turn:{link.a_ip}:{turn_port}?transport=udp",
                f"turn:{link.a_ip}:{turn_port}?transport=tcp",
            ),
        }
    relay_proc = coturn(
        link.a_ip, turn_port, (49300, 49360), tmp_path / "coturn.log", secret=TURN_SECRET
    )
    with running(relay_proc) as turn:
        turn.wait_output(r"Total General servers")
        async with running_server(make_config(tmp_path, **settings)) as server:
            origin = server.url  # http://198.18.1.1:port: secure only by this flag
            async with launched_chromium(
                school.wrapper(str(CHROMIUM), tmp_path),
                [f"--unsafely-treat-insecure-origin-as-secure={origin}"],
            ) as browser:
                tab = await new_tab(browser, f"{origin}/check", "check")
                report = await finished(tab)
                await tab.screenshot(f"check-school-{relay or 'no-relay'}")
                assert page_errors(tab) == []
    return report


@pytest.mark.slow
async def test_behind_a_udp_firewall_the_check_reports_turn_over_tcp(
    netlab: Netlab, tmp_path: Path
) -> None:
    report = await _check_from_school(netlab, tmp_path, relay="ok")
    v, paths = report["verdicts"], report["paths"]
    assert not paths["direct"]["connected"] and not paths["turn-udp"]["connected"], paths
    assert paths["turn-tcp"]["connected"] and paths["turn-tcp"]["media"], paths
    assert paths["turn-tcp"]["local"] == "relay" and paths["turn-tcp"]["relayProtocol"] == "tcp"
    assert v["connection"]["status"] == "amber", v["connection"]
    assert "relay, over TCP" in v["connection"]["words"]
    assert report["lesson"]["relayProtocol"] == "tcp", report["lesson"]
    assert v["rtt"]["status"] == "green" and v["upload"]["status"] != "red", report["text"]
    print(f"\n/check behind a UDP firewall: full report {report['timings']['reportMs']} ms")


@pytest.mark.slow
async def test_a_relay_that_refuses_the_servers_credential_is_named(
    netlab: Netlab, tmp_path: Path
) -> None:
    report = await _check_from_school(netlab, tmp_path, relay="wrong-secret")
    v, paths = report["verdicts"], report["paths"]
    assert v["connection"] == {"status": "red", "words": RELAY_REFUSED, "detail": None}, v
    assert any(e["code"] == 401 for e in paths["turn-tcp"]["errors"]), paths["turn-tcp"]
    named = report["timings"]["relayRefusedMs"]
    assert named is not None
    print(
        f"\n/check with a wrong TURN secret: the refused credential named {named} ms after"
        f" opening; full report {report['timings']['reportMs']} ms"
    )


@pytest.mark.slow
async def test_without_a_relay_the_check_says_there_is_no_route(
    netlab: Netlab, tmp_path: Path
) -> None:
    report = await _check_from_school(netlab, tmp_path, relay=None)
    v = report["verdicts"]
    assert v["connection"]["status"] == "red"
    assert v["connection"]["words"].startswith("No route"), v["connection"]
    assert "SIDECOACH_TURN_URLS" in v["connection"]["words"]
    assert v["signaling"]["status"] == "green"  # the page itself reaches the server
    assert list(report["paths"]) == ["direct"]
    print(f"\n/check with no route: full report {report['timings']['reportMs']} ms")
