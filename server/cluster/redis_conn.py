"""One Redis connection per node, and whether Redis is answering.

Every Redis call goes through ``RedisConn.run``: a failure marks Redis down
(logged once, with what the node does meanwhile) and raises
``RedisUnavailable``; the next success marks it up again (logged with how
long it was away). Calls time out quickly so a node never waits on a dead
Redis longer than ``TIMEOUT_S``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from server.cluster.errors import RedisUnavailable

logger = logging.getLogger(__name__)

#: a Redis call (connect or command) is given up after this long
TIMEOUT_S = 1.0

T = TypeVar("T")


def redacted(url: str) -> str:
    """host:port/db of a Redis URL, never its password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    return f"{parts.scheme}://{host}:{parts.port or 6379}{parts.path or ''}"


class RedisConn:
    def __init__(self, url: str) -> None:
        self.url = url
        self.name = redacted(url)
        self.client: Any = aioredis.Redis.from_url(
            url,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self.up = True
        #: wall time Redis stopped answering (None while up)
        self.down_since: float | None = None
        self._listeners: list[Callable[[bool], None]] = []

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
