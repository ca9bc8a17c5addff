"""A school whose firewall blocks UDP: teacher and coach pages (Chromium in
their own network namespace) reach Sidecoach only through Debian's coturn,
authenticated with the per-join TURN REST credential, and the coach sees
the classroom.

Topology (testkit/netns.py), all inside the test run's private namespace:

    school ns: Chromium 198.18.1.2 --veth-- 198.18.1.1 this ns: Sidecoach (HTTP + ICE), coturn
    school firewall: no UDP out at all -> TURN over TCP to coturn:3478,
    coturn relays UDP to Sidecoach's ICE address (its only allowed peer).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from server.core.tokens import verify_invite
from server.core.turn import turn_rest_credential
from testkit.browser import (
    CHROMIUM,
    KEEP_PEER_CONNECTIONS,
    Tab,
    launched_chromium,
    page_errors,
    teacher_live_and_coach_watching,
)
from testkit.coturn import TURNSERVER, coturn
from testkit.netns import Netlab
from testkit.procs import free_port, running
from testkit.server import TEST_SECRET, LiveServer, make_config, running_server

pytestmark = pytest.mark.browser

TURN_SECRET = "coturn-shared-secret-for-the-test-" + "t" * 16


#: the selected ICE candidate pair of a page's RTCPeerConnection
SELECTED_PAIR = """async () => {
    const pc = window.__pcs.at(-1);
    if (!pc) return null;
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => {
        const id = s.type === "transport" && s.selectedCandidatePairId;
        if (id) pair = stats.get(id);
    });
    if (!pair || pair.state !== "succeeded") return null;
    const local = stats.get(pair.localCandidateId), remote = stats.get(pair.remoteCandidateId);
    return {
        local: local.candidateType, relayProtocol: local.relayProtocol || null,
        remote: remote.candidateType, remoteAddress: remote.address,
        bytesReceived: pair.bytesReceived, policy: pc.getConfiguration().iceTransportPolicy,
    };
}"""


async def selected_pair(tab: Tab) -> dict[str, Any]:
    await tab.wait(
        "window.__pcs.at(-1)?.connectionState === 'connected'", timeout=30
    )
    pair: dict[str, Any] | None = None
    for _ in range(100):  # bounded: the pair is reported once checks succeed
        pair = await tab.page.evaluate(SELECTED_PAIR)
        if pair:
            break
        await tab.page.wait_for_timeout(100)
    assert pair, f"{tab.name}: no selected candidate pair"
    return pair


@pytest.mark.slow
async def test_pages_behind_a_udp_blocking_firewall_go_through_turn(
    netlab: Netlab, tmp_path: Path
) -> None:
    if not CHROMIUM.exists() or not Path(TURNSERVER).exists():
        pytest.skip("needs /usr/bin/chromium and coturn's turnserver")
    school = netlab.namespace("school")
    link = netlab.link(None, school, subnet=1)
    school.block_udp()  # not even to coturn: TURN over TCP it is
    turn_port = free_port(link.a_ip)
    config = make_config(
        tmp_path,
        host=link.a_ip,
        ice_listen_ips=(link.a_ip,),
        turn_secret=TURN_SECRET,
        turn_urls=(
            f"turn:{link.a_ip}:{turn_port}?transport=udp",
            f"turn:{link.a_ip}:{turn_port}?transport=tcp",
        ),
        ice_transport_policy="relay",
    )
    relay = coturn(
        link.a_ip, turn_port, (49200, 49260), tmp_path / "coturn.log", secret=TURN_SECRET
    )
    with running(relay) as turn:
        turn.wait_output(r"Total General servers")
        async with running_server(config) as server:
            invited = await _teacher_and_coach_through_turn(
                server, school.wrapper(str(CHROMIUM), tmp_path)
            )
        log = turn.output()
    # coturn authenticated each page with its own REST credential
    # ("<expiry>:<invite id>") and relayed media to Sidecoach for both
    relayed: dict[str, int] = {}
    for user, received in re.findall(
        r"peer usage: realm=<[^>]*>, username=<([^>]+)>, rp=\d+, rb=(\d+)", log
    ):
        relayed[user] = relayed.get(user, 0) + int(received)
    assert sorted(relayed) == sorted(invited), log[-3000:]
    assert all(n > 0 for n in relayed.values()), relayed


async def _teacher_and_coach_through_turn(server: LiveServer, chromium: Path) -> list[str]:
    """Teacher goes live, coach sees it, both over a relay candidate pair;
    returns the TURN usernames the two joins were given."""
    session = await server.create_session()
    tokens = {role: server.invite(session.id, role) for role in ("teacher", "coach")}
    origin = server.url  # http://198.18.1.1:port: a secure context only by this flag
    async with launched_chromium(
        chromium, [f"--unsafely-treat-insecure-origin-as-secure={origin}"]
    ) as browser:
        teacher, coach = await teacher_live_and_coach_watching(
            browser, origin, tokens["teacher"], tokens["coach"], init=KEEP_PEER_CONNECTIONS
        )
        for tab in (teacher, coach):
            pair = await selected_pair(tab)
            assert pair["policy"] == "relay", pair
            assert pair["local"] == "relay" and pair["relayProtocol"] == "tcp", pair
            assert pair["remoteAddress"] == server.config.ice_listen_ips[0], pair
        await coach.screenshot("coach-through-turn")
        assert page_errors(teacher, coach) == []
    return [
        turn_rest_credential(TURN_SECRET, c.expires_at, c.invite_id)[0]
        for c in (verify_invite(TEST_SECRET, t) for t in tokens.values())
    ]
