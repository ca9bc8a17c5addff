"""``sidecoach cluster check``: on any node, is the deployment put together
right? Four lines, each starting with ``ok`` or ``PROBLEM``:

* which nodes are live (their signed heartbeats in Redis);
* whether they share this box's secret (a heartbeat this box cannot verify
  comes from a node with another ``SIDECOACH_SECRET``);
* whether each node URL answers as its node and proves the secret, from
  here and from every other node (each node says in its heartbeat which
  others it reached);
* whether Redis is secured (TLS, a password; does it answer without one?).

The secret itself is never shown: only the first characters of a hash of
it, to compare boxes by eye.
"""

from __future__ import annotations

import hashlib
import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.cluster import handshake
from server.cluster.directory import Directory, NodeInfo
from server.cluster.errors import LinkRefused, RedisUnavailable
from server.cluster.links import MAX_MESSAGE_BYTES, PING_S
from server.cluster.redis_conn import TIMEOUT_S, RedisConn
from server.core.config import Config

OK, PROBLEM = "ok", "PROBLEM"


def fingerprint(secret: str) -> str:
    """A few characters to compare secrets between boxes (never the secret)."""
    return hashlib.sha256(b"sidecoach/fingerprint\n" + secret.encode()).hexdigest()[:8]


def _line(ok: bool, what: str, text: str) -> tuple[bool, str]:
    return ok, f"{OK if ok else PROBLEM:<7} {what}: {text}"


async def _probe(http: aiohttp.ClientSession, keys: handshake.LinkKeys, node: NodeInfo) -> str:
    try:
        await handshake.connect(
            http, node.url, keys, f"check@{socket.gethostname()}", node.id,
            heartbeat=PING_S, max_msg_size=MAX_MESSAGE_BYTES, probe=True,
        )  # fmt: skip
    except LinkRefused as exc:
        return exc.message
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return f"{node.url} does not answer ({type(exc).__name__})"
    return ""


async def _reach(config: Config, nodes: list[NodeInfo]) -> tuple[bool, str]:
    keys = handshake.LinkKeys(config.secret)
    timeout = aiohttp.ClientTimeout(total=config.limits.node_connect_timeout_s * 2)
    problems, checked = [], 0
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for node in nodes:
            why = await _probe(http, keys, node)
            checked += 1
            if why:
                problems.append(f"{node.id} from here: {why}")
            for other in nodes:
                if other.id == node.id:
                    continue
                checked += 1
                if node.reaches.get(other.id) is False:
                    problems.append(f"{node.id} cannot reach {other.id} at {other.url}")
                elif other.id not in node.reaches:
                    problems.append(f"{node.id} has not tried {other.id} yet")
    if problems:
        return _line(False, "node URLs", "; ".join(problems))
    return _line(True, "node URLs", f"every node answers at its URL as itself ({checked} checks)")


async def _redis_security(config: Config) -> tuple[bool, str]:
    url = config.redis_url or ""
    parts = urlsplit(url)
    have = []
    problems = []
    if parts.scheme == "rediss":
        have.append("TLS, certificate checked")
    else:
        problems.append(
            "no TLS (rediss://): the password and every entry cross the network in clear"
        )
    if parts.password:
        have.append("an ACL user's password" if parts.username else "a password")
    else:
        problems.append("no password in SIDECOACH_REDIS_URL")
    # does it answer someone without the password?
    bare = urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))
    if parts.port:
        bare = urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port}", parts.path, "", ""))
    tls: dict[str, Any] = {}
    if parts.scheme == "rediss" and config.redis_tls_ca is not None:
        tls["ssl_ca_certs"] = str(config.redis_tls_ca)
    anonymous = aioredis.Redis.from_url(
        bare, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S, **tls
    )
    try:
        await anonymous.set("sidecoach:check:anonymous", "1", px=1000)
        problems.append("it accepts writes without a password")
    except (RedisError, OSError):
        have.append("refuses writes without the password")
    finally:
        await anonymous.aclose()
    text = ", ".join(have) + ("; " + "; ".join(problems) if problems else "")
    return _line(not problems, "Redis secured", text.lstrip("; "))


async def check(config: Config) -> tuple[list[str], bool]:
    """The report's lines, and whether everything is right."""
    assert config.redis_url
    conn = RedisConn(config.redis_url, config.secret, tls_ca=config.redis_tls_ca)
    try:
        await conn.preflight()
        nodes, unverified = await Directory(conn, config.limits.node_ttl_s).live_nodes()
    except RedisUnavailable:
        return [f"{PROBLEM:<7} Redis at {conn.name} does not answer"], False
    finally:
        await conn.close()
    results = []
    names = ", ".join(f"{n.id} ({n.url})" for n in sorted(nodes, key=lambda n: n.id))
    results.append(_line(bool(nodes), "live nodes", f"{len(nodes)}: {names or 'none'}"))
    mine = f"this box's secret has fingerprint {fingerprint(config.secret)}"
    if unverified:
        results.append(_line(
            False, "shared secret",
            f"{', '.join(unverified)} {'signs' if len(unverified) == 1 else 'sign'} with another"
            f" secret ({mine}; set the same"
            " SIDECOACH_SECRET on every box)",
        ))  # fmt: skip
    else:
        results.append(_line(
            bool(nodes), "shared secret", f"all {len(nodes)} live nodes sign with it ({mine})"
        ))  # fmt: skip
    results.append(await _reach(config, nodes))
    results.append(await _redis_security(config))
    return [text for _, text in results], all(ok for ok, _ in results)
