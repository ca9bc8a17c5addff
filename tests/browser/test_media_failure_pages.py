"""Failures named where they happen, on the page: a teacher behind a
UDP-blocking school firewall whose relay refuses the server's TURN
credential never shows LIVE; the page says "Connecting…" and, after 10 s,
names the refused credential (the coach's page too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.browser import CHROMIUM, KEEP_PEER_CONNECTIONS, launched_chromium, new_tab
from testkit.coturn import TURNSERVER, coturn
from testkit.netns import Netlab
from testkit.procs import free_port, running
from testkit.server import make_config, running_server

pytestmark = pytest.mark.browser

TURN_SECRET = "the-relays-own-secret-for-this-test-" + "r" * 16
RELAY_REFUSED = (
    "The school's relay refused our credentials: ask your admin to check SIDECOACH_TURN_SECRET."
)
#: every text the big live label and the recording pill ever showed
WATCH_LABELS = KEEP_PEER_CONNECTIONS + """
(() => {
  window.__labels = [];
  const note = () => {
    for (const sel of ["#live-state", ".recording-state:not([hidden])", "#teacher-state"]) {
      const el = document.querySelector(sel);
      if (el && !window.__labels.includes(el.textContent)) window.__labels.push(el.textContent);
    }
  };
  new MutationObserver(note).observe(
    document, {subtree: true, childList: true, characterData: true, attributes: true});
})();
"""


@pytest.mark.slow
async def test_a_refused_relay_is_named_and_live_is_never_shown(
    netlab: Netlab, tmp_path: Path
) -> None:
    if not CHROMIUM.exists() or not Path(TURNSERVER).exists():
        pytest.skip("needs /usr/bin/chromium and coturn's turnserver")
    school = netlab.namespace("school")
    link = netlab.link(None, school, subnet=1)
    school.block_udp()
    turn_port = free_port(link.a_ip)
    config = make_config(
        tmp_path,
        host=link.a_ip,
        ice_listen_ips=(link.a_ip,),
        turn_secret="not-" + TURN_SECRET,  # the relay knows another one
        turn_urls=(f"turn:{link.a_ip}:{turn_port}?transport=tcp",),
    )
    log = tmp_path / "coturn.log"
    relay = coturn(link.a_ip, turn_port, (49400, 49460), log, secret=TURN_SECRET)
    with running(relay) as turn:
        turn.wait_output(r"Total General servers")
        async with running_server(config) as server:
            session = await server.create_session()
            origin = server.url
            async with launched_chromium(
                school.wrapper(str(CHROMIUM), tmp_path),
                [f"--unsafely-treat-insecure-origin-as-secure={origin}"],
            ) as browser:
                url = f"{origin}/join?token={server.invite(session.id, 'teacher')}"
                teacher = await new_tab(browser, url, "teacher", init=WATCH_LABELS)
                await teacher.wait("sidecoach.state === 'joined'", timeout=30)
                await teacher.page.click("#go-live")
                clicked = await teacher.js("performance.now()")
                await teacher.wait("document.body.dataset.phase === 'connecting'")
                await teacher.wait(
                    "document.querySelector('#conn-detail').textContent.includes('relay refused')",
                    timeout=40,
                )
                named = await teacher.js("performance.now()") - clicked
                detail = await teacher.page.inner_text("#conn-detail")
                assert detail == RELAY_REFUSED, detail
                assert await teacher.page.inner_text("#live-state") == "Connecting…"
                await teacher.screenshot("teacher-relay-refused")
                coach_url = f"{origin}/join?token={server.invite(session.id, 'coach')}"
                coach = await new_tab(browser, coach_url, "coach", init=WATCH_LABELS)
                await coach.wait("sidecoach.state === 'joined'", timeout=30)
                await coach.wait(
                    "document.querySelector('#conn-detail').textContent.includes('relay refused')",
                    timeout=40,
                )
                await coach.screenshot("coach-relay-refused")
                labels = await teacher.js("window.__labels") + await coach.js("window.__labels")
                assert "● LIVE" not in labels and "● Classroom live" not in labels, labels
                assert "Recording" not in labels, "\n".join(labels)
                print(f"\nGo live, relay refused: named on the page after {named / 1000:.1f} s")
