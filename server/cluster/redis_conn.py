"""One Redis connection per node, and whether Redis is answering.

Every Redis call goes through ``RedisConn.run``: a failure marks Redis down
(logged once, with what the node does meanwhile) and raises
``RedisUnavailable``; the next success marks it up again (logged with how
long it was away). Calls time out quickly so a node never waits on a dead
Redis longer than ``TIMEOUT_S``.

Redis as an operator secures it: ``rediss://`` is TLS, the server's
certificate checked (host name included) against the system's CAs or
``SIDECOACH_REDIS_TLS_CA``; a password (``redis://:PASSWORD@...``,
``requirepass``) or an ACL user (``redis://USER:PASSWORD@...``) is sent
when given, and never logged (``redacted``). ``preflight`` tells a
refused password or an untrusted certificate apart from a Redis that is
merely down: the first two stop the node at start with a clear message.
The connection also holds the deployment's ``EntrySigner`` (``signing.py``):
everything written to Redis is signed with it.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, NoPermissionError, RedisError, ResponseError

from server.cluster.errors import RedisUnavailable
from server.cluster.signing import EntrySigner
from server.core.errors import ConfigError

logger = logging.getLogger(__name__)

#: a Redis call (connect or command) is given up after this long
TIMEOUT_S = 1.0

T = TypeVar("T")


def redacted(url: str) -> str:
    """host:port/db of a Redis URL, never its password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    return f"{parts.scheme}://{host}:{parts.port or 6379}{parts.path or ''}"


def security(url: str) -> list[str]:
    """What protects this Redis URL: "TLS", "password", "ACL user"."""
    parts = urlsplit(url)
    found = ["TLS"] if parts.scheme == "rediss" else []
    if parts.password:
        found.append("ACL user" if parts.username else "password")
    return found


def _refusal(exc: BaseException) -> str | None:
    """Why Redis will never accept this node as configured, or None if it
    may only be down."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AuthenticationError):
            return (
                "Redis refused the user name or password (they go in the URL:"
                " rediss://USER:PASSWORD@HOST:PORT/DB)"
            )
        if isinstance(seen, NoPermissionError) or (
            isinstance(seen, ResponseError) and str(seen).startswith(("NOPERM", "NOAUTH"))
        ):
            return f"Redis refused a command ({seen}): the URL needs a user and password"
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"Redis's TLS certificate is not trusted ({seen.verify_message})"
        seen = seen.__cause__ or seen.__context__
    return None


class RedisConn:
    def __init__(self, url: str, secret: str, *, tls_ca: Path | None = None) -> None:
        self.url = url
        self.name = redacted(url)
        #: what protects this connection (for ``sidecoach cluster check``)
        self.security = security(url)
        self.signer = EntrySigner(secret)
        tls: dict[str, Any] = {}
        if url.startswith("rediss://"):
            tls = {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
            if tls_ca is not None:
                tls["ssl_ca_certs"] = str(tls_ca)
        self.client: Any = aioredis.Redis.from_url(
            url,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
            **tls,
        )
        self.up = True
        #: wall time Redis stopped answering (None while up)
        self.down_since: float | None = None
        self._listeners: list[Callable[[bool], None]] = []

    async def preflight(self) -> None:
        """At start: raise ConfigError if Redis refuses this node for good
        (password, permissions, certificate); a Redis that does not answer
        is not an error (the node starts and waits for it)."""
        try:
            await self.client.ping()
            await self.client.exists(f"sidecoach:preflight:{time.time_ns()}")
        except (RedisError, OSError, TimeoutError) as exc:
            why = _refusal(exc)
            if why is not None:
                raise ConfigError(f"SIDECOACH_REDIS_URL ({self.name}): {why}") from None
            self._went_down(exc)

    def on_change(self, listener: Callable[[bool], None]) -> None:
        """``listener(up)`` is called when Redis goes down or comes back."""
        self._listeners.append(listener)

    async def run(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """``await fn(client)``; raises RedisUnavailable if Redis fails."""
        try:
            result = await fn(self.client)
        except (RedisError, OSError, TimeoutError) as exc:
            self._went_down(exc)
            raise RedisUnavailable(f"Redis at {self.name} is not answering") from exc
        if not self.up:
            # ``fn`` may not have needed Redis at all (an empty pipeline at
            # shutdown): only an answer from Redis itself means it is back
            try:
                await self.client.ping()
            except (RedisError, OSError, TimeoutError):
                return result
            self._came_back()
        return result

    def _went_down(self, exc: BaseException) -> None:
        if not self.up:
            return
        self.up = False
        self.down_since = time.time()
        logger.error(
            "Redis at %s is not answering (%s: %s): this node keeps serving its live"
            " sessions and opens new ones here; the directory catches up when Redis is back",
            self.name,
            type(exc).__name__,
            exc,
        )
        for listener in self._listeners:
            listener(False)

    def _came_back(self) -> None:
        away = time.time() - (self.down_since or time.time())
        self.up = True
        self.down_since = None
        logger.warning("Redis at %s is answering again after %.1f s", self.name, away)
        for listener in self._listeners:
            listener(True)

    async def close(self) -> None:
        await self.client.aclose()


async def preflight(url: str, secret: str, tls_ca: Path | None) -> None:
    """Before a node starts: ConfigError if Redis refuses it for good."""
    conn = RedisConn(url, secret, tls_ca=tls_ca)
    try:
        await conn.preflight()
    finally:
        await conn.close()
