"""The pre-lesson check (the ``/check`` page): a few test connections to this
server, each a real server peer that receives one test track, so a teacher
or coach learns before the lesson which path to the server works here.

A check is not a session: it has no participants, no Router, no recording,
and nothing it does reaches a lesson. Its probes are ``media.peer.Peer``s
(the lessons' own negotiation: the server offers to receive one track, the
page answers) whose producers nobody consumes; the server counts what they
receive, so the page learns what really arrived.

The paths a page tries (``check_paths``): UDP direct (host and STUN
candidates), and each TURN URL the lessons use on its own with
``iceTransportPolicy: "relay"`` (TURN over UDP, TCP or TLS). The TURN
credential a check hands out is the lessons' REST credential for the user
``check-<id>``, expiring after ``CHECK_TURN_TTL_S``; coturn as the README
configures it relays only to this server's ICE addresses.

No token is needed (a teacher checks before having any invite), so every
count is bounded by a named limit below, and checks per address are
rate-limited.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.core.config import Config
from server.core.errors import InvalidMessage, LimitReached, NotFound, RateLimited
from server.core.ratelimit import TokenBucket
from server.core.tasks import TaskOwner
from server.core.turn import turn_rest_credential
from server.media.consumer import Consumer
from server.media.peer import Peer
from server.media.policy import ProducerInfo, Source
from server.media.producer import Producer

logger = logging.getLogger(__name__)

#: checks running at once on this node
MAX_CHECKS = 8
#: checks running at once from one address
MAX_CHECKS_PER_ADDRESS = 2
#: checks one address may start in a burst, then one every CHECK_REFILL_S
CHECK_BURST_PER_ADDRESS = 6
CHECK_REFILL_S = 10.0
#: addresses whose check rate is remembered (the oldest is forgotten first)
MAX_REMEMBERED_ADDRESSES = 1024
#: test connections (server peers) in one check
MAX_PROBES_PER_CHECK = 8
#: a check ends by itself this long after it started
CHECK_MAX_S = 90.0
#: the TURN credential of a check expires this long after it started
CHECK_TURN_TTL_S = 300

PathId = str
#: what a probe may receive: a lesson's camera (simulcast), one plain video
#: stream, or a microphone
PROBE_SOURCES = (Source.CAMERA, Source.SCREEN, Source.MIC)


@dataclass(frozen=True)
class CheckPath:
    """One way to the server a page tries: its ICE servers and policy."""

    id: PathId
    #: "direct", "turn-udp", "turn-tcp" or "turn-tls"
    transport: str
    ice_servers: list[dict[str, Any]]
    ice_transport_policy: str
    #: the TURN URL tried (None: direct)
    url: str | None = None

    def to_client(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "transport": self.transport,
            "iceServers": self.ice_servers,
            "iceTransportPolicy": self.ice_transport_policy,
            "url": self.url,
        }


def relay_transport(url: str) -> str:
    """``turn-udp``, ``turn-tcp`` or ``turn-tls`` for a turn:/turns: URL."""
    scheme, _, rest = url.partition(":")
    if scheme.lower() == "turns":
        return "turn-tls"
    query = rest.partition("?")[2].lower()
    return "turn-tcp" if "transport=tcp" in query else "turn-udp"


def check_paths(config: Config, user: str, expires_at: int) -> list[CheckPath]:
    """Direct, then each TURN URL of the lessons on its own (relay only)."""
    stun = [
        {"urls": [u for u in s.urls if u.lower().startswith(("stun:", "stuns:"))]}
        for s in config.ice_servers
    ]
    paths = [CheckPath("direct", "direct", [s for s in stun if s["urls"]], "all")]
    relays: list[tuple[str, str | None, str | None]] = []
    if config.turn_secret:
        rest: tuple[str | None, str | None] = turn_rest_credential(
            config.turn_secret, expires_at, user
        )
        relays += [(url, *rest) for url in config.turn_urls]
    for server in config.ice_servers:
        relays += [
            (url, server.username, server.credential)
            for url in server.urls
            if url.lower().startswith(("turn:", "turns:"))
        ]
    seen: dict[str, int] = {}
    # each way is one test connection, and so is the lesson's: all fit a check
    for url, username, credential in relays[: MAX_PROBES_PER_CHECK - 2]:
        transport = relay_transport(url)
        seen[transport] = seen.get(transport, 0) + 1
        path_id = transport if seen[transport] == 1 else f"{transport}-{seen[transport]}"
        ice: dict[str, Any] = {"urls": [url]}
        if username is not None:
            ice["username"] = username
        if credential is not None:
            ice["credential"] = credential
        paths.append(CheckPath(path_id, transport, [ice], "relay", url))
    return paths


def lesson_ice(paths: list[CheckPath], policy: str) -> dict[str, Any]:
    """The ICE configuration a lesson's page would have (every server at
    once, the lessons' policy): what the bandwidth probe uses."""
    servers = [s for p in paths for s in p.ice_servers]
    return {"iceServers": servers, "iceTransportPolicy": policy}


@dataclass
class Probe:
    """One test connection: a server peer receiving one track."""

    id: str
    source: Source
    peer: Peer
    state: str = "offered"
    reason: str = ""
    producer: Producer | None = None
    started: float = field(default_factory=time.monotonic)

    def stats(self) -> dict[str, Any]:
        p = self.producer
        state = self.state
        if p is not None and p.packets_received and state != "failed":
            state = "receiving"
        return {
            "probeId": self.id,
            "state": state,
            "reason": self.reason,
            "packets": p.packets_received + p.packets_unknown if p is not None else 0,
            "bytes": p.bytes_received if p is not None else 0,
            # how long the server has been receiving (first to last packet)
            "receivingMs": round((p.packet_time - p.first_packet_at) * 1000)
            if p is not None and p.packets_received
            else 0,
        }


class _ProbeEvents:
    """A probe's peer events: offers go to the page, the rest is noted."""

    def __init__(self, check: LineCheck, probe_id: str) -> None:
        self._check = check
        self._id = probe_id

    async def send_offer(self, payload: dict[str, Any]) -> None:
        await self._check.send("check-offer", {"probeId": self._id, **payload})

    def producer_ready(self, producer: Producer) -> None:
        probe = self._check.probes.get(self._id)
        if probe is None:
            self._check.spawn(producer.close())
            return
        probe.producer = producer
        probe.state = "answered"

    def publish_failed(self, producer_id: str, reason: str) -> None:
        self._check.failed(self._id, reason)

    def peer_failed(self, reason: str) -> None:
        self._check.failed(self._id, reason)


Send = Callable[[str, dict[str, Any]], Any]


class LineCheck:
    """One page's check: up to ``MAX_PROBES_PER_CHECK`` probes, all closed
    when the page stops, disconnects, or after ``CHECK_MAX_S``."""

    def __init__(self, check_id: str, config: Config, send: Send) -> None:
        self.id = check_id
        self.config = config
        self.probes: dict[str, Probe] = {}
        self.started = time.time()
        self.expires_at = int(self.started) + CHECK_TURN_TTL_S
        self.paths = check_paths(config, f"check-{check_id}", self.expires_at)
        self.closed = False
        self._send = send
        self._on_closed: list[Callable[[LineCheck], None]] = []
        self._tasks = TaskOwner(f"check {check_id}")
        self._log = logging.LoggerAdapter(logger, {"check": check_id})
        self._tasks.spawn(self._expire(), name=f"check {check_id} deadline")

    def describe(self) -> dict[str, Any]:
        return {
            "checkId": self.id,
            "paths": [p.to_client() for p in self.paths],
            "lesson": lesson_ice(self.paths, self.config.ice_transport_policy),
            "maxVideoKbps": self.config.limits.max_video_bitrate_kbps,
            "maxProbes": MAX_PROBES_PER_CHECK,
            "seconds": CHECK_MAX_S,
        }

    def on_close(self, callback: Callable[[LineCheck], None]) -> None:
        """Call ``callback`` once the check is over (stopped or timed out)."""
        self._on_closed.append(callback)

    def spawn(self, coro: Any) -> None:
        self._tasks.spawn(coro)

    async def send(self, event: str, payload: dict[str, Any]) -> None:
        if not self.closed:
            await self._send(event, payload)

    def probe(self, source: Source) -> str:
        """A new server peer that offers to receive one track from ``source``."""
        if source not in PROBE_SOURCES:
            raise InvalidMessage(f"a check receives no {source}")
        if len(self.probes) >= MAX_PROBES_PER_CHECK:
            raise LimitReached(f"a check has at most {MAX_PROBES_PER_CHECK} test connections")
        probe_id = "k-" + secrets.token_hex(5)
        peer = Peer(
            participant_id=probe_id,
            role="check",
            config=self.config,
            events=_ProbeEvents(self, probe_id),
            describe_consumer=_no_consumers,
        )
        self.probes[probe_id] = Probe(probe_id, source, peer)
        kind = "audio" if source == Source.MIC else "video"
        info = ProducerInfo(probe_id, self.id, "check", source, kind)
        peer.request_publish(info, None)
        return probe_id

    def get(self, probe_id: str) -> Probe:
        probe = self.probes.get(probe_id)
        if probe is None:
            raise NotFound("no such test connection in this check")
        return probe

    def failed(self, probe_id: str, reason: str) -> None:
        probe = self.probes.get(probe_id)
        if probe is None or probe.state == "failed":
            return
        probe.state, probe.reason = "failed", reason
        self._log.info("probe %s failed: %s", probe_id, reason)

    async def _expire(self) -> None:
        await asyncio.sleep(CHECK_MAX_S)
        self._log.info("check ended after %.0f s", CHECK_MAX_S)
        await self.send("check-ended", {"checkId": self.id, "reason": "time is up"})
        self.spawn(self.close())

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for callback in self._on_closed:
            callback(self)
        for probe in self.probes.values():
            await probe.peer.close()
        await self._tasks.aclose()


def _no_consumers(consumer: Consumer) -> dict[str, Any]:  # pragma: no cover - never called
    return {"consumerId": consumer.id}


class Checks:
    """This node's checks, bounded in number, per address and in rate."""

    def __init__(self, config: Config, now_fn: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.running: dict[str, LineCheck] = {}
        self._address_of: dict[str, str] = {}
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._now = now_fn
        self.started = 0

    def start(self, remote: str, send: Send) -> LineCheck:
        """A new check for a page at ``remote``; refused past the limits."""
        if len(self.running) >= MAX_CHECKS:
            raise LimitReached("too many checks are running: try again in a minute")
        mine = sum(1 for a in self._address_of.values() if a == remote)
        if mine >= MAX_CHECKS_PER_ADDRESS:
            raise LimitReached("this address is running checks already: stop one first")
        if not self._bucket(remote).allow():
            raise RateLimited("too many checks from this address: wait a minute")
        check = LineCheck(secrets.token_hex(6), self.config, send)
        check.on_close(self._forget)
        self.running[check.id] = check
        self._address_of[check.id] = remote
        self.started += 1
        return check

    def _bucket(self, remote: str) -> TokenBucket:
        bucket = self._buckets.pop(remote, None)
        if bucket is None:
            bucket = TokenBucket(1 / CHECK_REFILL_S, CHECK_BURST_PER_ADDRESS, self._now)
        self._buckets[remote] = bucket  # most recent last
        while len(self._buckets) > MAX_REMEMBERED_ADDRESSES:
            self._buckets.popitem(last=False)
        return bucket

    def _forget(self, check: LineCheck) -> None:
        self.running.pop(check.id, None)
        self._address_of.pop(check.id, None)

    async def close(self) -> None:
        for check in list(self.running.values()):
            await check.close()
