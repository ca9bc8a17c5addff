"""Why a participant's media connection failed, as far as the server can
tell: named where it happens (a WARNING naming ICE and TURN) and told to the
page (``removed {code: "peer_failed", cause, reason}``).

What the server knows: the ICE and DTLS states of its side, the candidates
the page put in its answer (host, srflx, relay), and whether a TURN relay is
configured. When one is and the page offered no relay candidate, the server
asks the relay for an allocation itself, with a credential made the same way
as the page's (``core/turn.py``): a 401 means the relay refuses the shared
secret (``SIDECOACH_TURN_SECRET`` differs from coturn's
``static-auth-secret``), no answer means it cannot be reached.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from aioice import stun
from aioice.turn import create_turn_endpoint

from server.core.config import Config
from server.core.turn import turn_rest_credential

#: the server's own TURN allocation (the probe) is given up after this
TURN_PROBE_TIMEOUT_S = 3.0


class Cause(StrEnum):
    """``removed.cause``: why the media connection failed."""

    NO_ANSWER = "no_answer"
    CLOSED = "closed"
    NO_CANDIDATES = "no_candidates"
    NO_ROUTE = "no_route"
    RELAY_REFUSED = "relay_refused"
    RELAY_UNREACHABLE = "relay_unreachable"
    RELAY_NOT_USED = "relay_not_used"
    NO_ROUTE_VIA_RELAY = "no_route_via_relay"
    DTLS_FAILED = "dtls_failed"
    CONNECTION_LOST = "connection_lost"


#: what a page shows for each cause: one sentence, with what to do
REASONS = {
    Cause.NO_ANSWER: "The page did not answer the server's media offer in time: reload the page.",
    Cause.CLOSED: "The media connection was closed by the page.",
    Cause.NO_CANDIDATES: "This device offered no network address for media: check its network.",
    Cause.NO_ROUTE: "No route for media between this device and the server (UDP blocked?):"
    " ask your admin to set up a TURN relay.",
    Cause.RELAY_REFUSED: "The school's relay refused our credentials: ask your admin to check"
    " SIDECOACH_TURN_SECRET.",
    Cause.RELAY_UNREACHABLE: "The school's relay (TURN) cannot be reached: ask your admin to"
    " check that it is running.",
    Cause.RELAY_NOT_USED: "This device could not reach the school's relay (TURN): a firewall"
    " may block it.",
    Cause.NO_ROUTE_VIA_RELAY: "The relay (TURN) cannot reach the server: ask your admin to check"
    " the relay's allowed peer addresses and SIDECOACH_ICE_LISTEN_IPS.",
    Cause.DTLS_FAILED: "The secure media handshake (DTLS) failed after the network path was"
    " found: reload the page.",
    Cause.CONNECTION_LOST: "The media connection was lost (the network dropped).",
}


@dataclass(frozen=True)
class Failure:
    cause: Cause
    #: for the log: ICE, DTLS, candidates, TURN (no credential)
    detail: str

    @property
    def reason(self) -> str:
        return REASONS[self.cause]


def candidate_types(sdp: str) -> dict[str, int]:
    """How many candidates of each type (host, srflx, prflx, relay) ``sdp`` has."""
    counts: dict[str, int] = {}
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if "typ" in parts and parts.index("typ") + 1 < len(parts):
                kind = parts[parts.index("typ") + 1]
                counts[kind] = counts.get(kind, 0) + 1
    return counts


def transport_states(pc: Any) -> tuple[str, str]:
    """(ICE state, DTLS state) of the server's side of ``pc`` (bundled:
    the first transport tells)."""
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport or transceiver.sender.transport
        if dtls is not None:
            return str(dtls.transport.state), str(dtls.state)
    return "new", "new"


@dataclass(frozen=True)
class TurnServer:
    host: str
    port: int
    transport: str
    username: str
    password: str

    def describe(self) -> str:
        return f"turn:{self.host}:{self.port} ({self.transport})"


def turn_server(config: Config) -> TurnServer | None:
    """The first plain (not TLS) TURN URL configured, with a credential."""
    if config.turn_secret and config.turn_urls:
        username, password = turn_rest_credential(
            config.turn_secret, int(time.time()) + 300, "sidecoach-diagnosis"
        )
        candidates = [(url, username, password) for url in config.turn_urls]
    else:
        candidates = [
            (url, server.username or "", server.credential or "")
            for server in config.ice_servers
            for url in server.urls
        ]
    for url, username, password in candidates:
        if not url.startswith("turn:"):
            continue
        address, _, query = url.removeprefix("turn:").partition("?")
        parts = urlsplit(f"//{address}")
        transport = "tcp" if "transport=tcp" in query else "udp"
        if parts.hostname:
            return TurnServer(parts.hostname, parts.port or 3478, transport, username, password)
    return None


async def probe_turn(server: TurnServer, timeout_s: float = TURN_PROBE_TIMEOUT_S) -> str:
    """Ask ``server`` for an allocation: "accepted", "refused" (401/403) or
    "unreachable"."""
    try:
        transport, _ = await asyncio.wait_for(
            create_turn_endpoint(
                asyncio.DatagramProtocol,
                (server.host, server.port),
                server.username,
                server.password,
                transport=server.transport,
            ),
            timeout_s,
        )
    except stun.TransactionFailed as exc:
        code = exc.response.attributes.get("ERROR-CODE", (0, ""))[0]
        return "refused" if code in (401, 403, 431, 441) else f"refused ({code})"
    except (OSError, TimeoutError, stun.TransactionTimeout, ConnectionError):
        return "unreachable"
    transport.close()
    return "accepted"


async def diagnose(pc: Any, config: Config, reason: str, *, flowed: bool = False) -> Failure:
    """Why ``pc`` failed (``reason``: what the peer saw; ``flowed``: media
    had flowed on it), as far as the server can tell."""
    if "timed out" in reason:
        return Failure(Cause.NO_ANSWER, f"signaling: {reason}")
    ice, dtls = transport_states(pc)
    remote = pc.remoteDescription.sdp if pc.remoteDescription is not None else ""
    kinds = candidate_types(remote)
    seen = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"
    state = f"ICE {ice}, DTLS {dtls}; the page's candidates: {seen}"
    if "closed by the other side" in reason:
        return Failure(Cause.CLOSED, state)
    if flowed:
        return Failure(Cause.CONNECTION_LOST, f"{state}; media had flowed")
    if ice == "completed":
        return Failure(Cause.DTLS_FAILED, f"{state}; ICE found a path")
    if not kinds:
        return Failure(Cause.NO_CANDIDATES, f"{state}; ICE had nothing to check")
    turn = turn_server(config)
    if turn is None:
        return Failure(Cause.NO_ROUTE, f"{state}; no ICE check succeeded; TURN: none configured")
    if kinds.get("relay"):
        return Failure(
            Cause.NO_ROUTE_VIA_RELAY,
            f"{state}; no ICE check succeeded, not even through the page's TURN relay",
        )
    verdict = await probe_turn(turn)
    detail = f"{state}; no relay candidate from the page; TURN {turn.describe()}: {verdict}"
    if verdict == "accepted":
        return Failure(Cause.RELAY_NOT_USED, f"{detail} for the server")
    if verdict == "unreachable":
        return Failure(Cause.RELAY_UNREACHABLE, detail)
    return Failure(
        Cause.RELAY_REFUSED, f"{detail} (SIDECOACH_TURN_SECRET differs from the relay's?)"
    )
