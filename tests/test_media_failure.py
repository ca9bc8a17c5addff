"""Failures named where they happen, server side: a participant whose media
connection cannot be made is removed with ``removed {code: "peer_failed",
cause, reason}`` (a sentence the page can show), and the server logs the
cause as a WARNING naming ICE and TURN. Real server, a real aiortc peer whose
ICE candidates lead nowhere (addresses of no machine here), and Debian's
coturn on loopback with another secret than the server's."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import testkit.peers
from server.core.config import Limits
from server.live.media_failure import (
    REASONS,
    Cause,
    TurnServer,
    candidate_types,
    probe_turn,
    turn_server,
)
from server.media.aiortc_adapter import restrict_ice
from testkit.peers import PatternVideoTrack, wait_for
from testkit.procs import Proc, free_port, running
from testkit.server import make_config, running_server

pytestmark = pytest.mark.integration

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
#: TEST-NET-1 addresses: nothing here routes to them, so ICE checks fail
SERVER_ANNOUNCES = "192.0.2.77"
PAGE_ANNOUNCES = "192.0.2.78"
SERVER_SECRET = "the-server-thinks-this-is-the-secret-" + "s" * 10
RELAY_SECRET = "but-the-relay-was-given-another-one-" + "r" * 10


@pytest.fixture
def unroutable_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test peers announce an address of no machine here in their answers."""

    def restrict(pc: Any, ips: tuple[str, ...], announced: str | None) -> None:
        restrict_ice(pc, ips, PAGE_ANNOUNCES)

    monkeypatch.setattr(testkit.peers, "restrict_ice", restrict)


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[int]:
    """coturn on 127.0.0.1 with RELAY_SECRET (not the server's); its port."""
    if not Path(TURNSERVER).exists():
        pytest.skip("needs coturn's turnserver")
    port = free_port()
    cmd = [
        TURNSERVER, "-n", "--listening-ip=127.0.0.1", f"--listening-port={port}",
        "--use-auth-secret", f"--static-auth-secret={RELAY_SECRET}", "--realm=school.example",
        "--fingerprint", "--no-tls", "--no-dtls", "--no-cli", "--log-file=stdout",
        f"--pidfile={tmp_path / 'turnserver.pid'}", f"--userdb={tmp_path / 'turndb'}",
        "--min-port=49000", "--max-port=49100",
    ]  # fmt: skip
    with running(Proc(cmd, tmp_path / "coturn.log")) as proc:
        proc.wait_output(r"Total General servers|listener opened on|IPv4. UDP listener", 20)
        yield port


async def failed_removal(tmp_path: Path, **settings: Any) -> dict[str, Any]:
    """A teacher whose media connection cannot be made: the ``removed`` it gets."""
    config = make_config(
        tmp_path,
        ice_announced_ip=SERVER_ANNOUNCES,
        limits=Limits(negotiation_timeout_s=6.0),
        **settings,
    )
    async with running_server(config) as server:
        session = await server.create_session(recording=False)
        teacher = server.participant(session.id, "teacher")
        try:
            await teacher.join()
            await teacher.publish(PatternVideoTrack(), "camera")
            await wait_for(lambda: teacher.got("removed") != [], timeout=40)
        finally:
            await teacher.close()
    removed: dict[str, Any] = teacher.got("removed")[0]
    assert removed["code"] == "peer_failed"
    return removed


def warnings_of(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
    )


@pytest.mark.slow
async def test_no_route_and_no_relay_is_named(
    tmp_path: Path, unroutable_page: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.live")
    removed = await failed_removal(tmp_path)
    assert removed["cause"] == Cause.NO_ROUTE
    assert removed["reason"] == REASONS[Cause.NO_ROUTE]
    logged = warnings_of(caplog)
    assert "failed: no_route: ICE " in logged
    assert "TURN: none configured" in logged


@pytest.mark.slow
async def test_a_relay_that_refuses_the_secret_is_named(
    tmp_path: Path, unroutable_page: None, relay: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.live")
    removed = await failed_removal(
        tmp_path,
        turn_secret=SERVER_SECRET,
        turn_urls=(f"turn:127.0.0.1:{relay}?transport=udp",),
    )
    assert removed["cause"] == Cause.RELAY_REFUSED
    assert "SIDECOACH_TURN_SECRET" in removed["reason"]
    logged = warnings_of(caplog)
    assert f"TURN turn:127.0.0.1:{relay} (udp): refused" in logged and "ICE " in logged
    for secret in (SERVER_SECRET, RELAY_SECRET):
        assert secret not in caplog.text


@pytest.mark.slow
async def test_a_relay_that_does_not_answer_is_named(
    tmp_path: Path, unroutable_page: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.live")
    removed = await failed_removal(
        tmp_path,
        turn_secret=SERVER_SECRET,
        turn_urls=(f"turn:127.0.0.1:{free_port()}?transport=tcp",),
    )
    assert removed["cause"] == Cause.RELAY_UNREACHABLE
    assert "(tcp): unreachable" in warnings_of(caplog)


async def test_the_probe_tells_a_right_secret_from_a_wrong_one(relay: int) -> None:
    config = make_config(
        Path("/nonexistent"),
        turn_secret=RELAY_SECRET,
        turn_urls=(f"turn:127.0.0.1:{relay}?transport=udp",),
    )
    right = turn_server(config)
    assert right is not None
    assert await probe_turn(right) == "accepted"
    wrong = turn_server(replace(config, turn_secret=SERVER_SECRET))
    assert wrong is not None and await probe_turn(wrong) == "refused"
    nobody = TurnServer("127.0.0.1", free_port(), "udp", "u", "p")
    assert await probe_turn(nobody, timeout_s=1.0) == "unreachable"


def test_candidate_types_are_counted_from_the_answer() -> None:
    sdp = (
        "a=candidate:1 1 udp 2130706431 10.0.0.5 5000 typ host\r\n"
        "a=candidate:2 1 udp 1694498815 203.0.113.9 5000 typ srflx raddr 10.0.0.5 rport 5000\r\n"
        "a=candidate:3 1 udp 16777215 198.51.100.1 6000 typ relay raddr 0.0.0.0 rport 0\r\n"
    )
    assert candidate_types(sdp) == {"host": 1, "srflx": 1, "relay": 1}
