"""Recording series in Redis: which part of a session's recording is being
written, so that the node a session moves to continues it as the next part.

``sidecoach:recseries:<session>`` = ``{"series", "part", "recording",
"node", "open"}`` (signed, ``signing.py``). ``open`` is true while the series goes on: a node that
dies or drains leaves it open (its part is finalized by recovery or by the
drain) and the next node writing this session's recording continues the
series; the teacher switching recording off closes it (the next recording
is a new one). Redis being down never stops a recording: the next part is
then a new recording (logged).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from server.cluster.directory import PREFIX
from server.cluster.errors import RedisUnavailable
from server.cluster.redis_conn import RedisConn
from server.cluster.signing import SERIES

logger = logging.getLogger(__name__)

#: a series nobody continued for this long is forgotten
SERIES_TTL_S = 2 * 24 * 3600


def series_key(session_id: str) -> str:
    return f"{PREFIX}recseries:{session_id}"


class RecordingSeries:
    """Implements ``session_recording.RecordingParts``."""

    def __init__(self, redis: RedisConn, node_id: str) -> None:
        self._redis = redis
        self._node = node_id

    async def continuation(self, session_id: str) -> tuple[str, int] | None:
        """(series, next part) if this session's recording goes on here."""
        key = series_key(session_id)
        try:
            raw = self._redis.signer.open(SERIES, key, await self._redis.run(lambda r: r.get(key)))
        except RedisUnavailable:
            logger.warning(
                "session %s: Redis is down, a recording starting here is a new one", session_id
            )
            return None
        try:
            data: dict[str, Any] = json.loads(raw) if raw else {}
            if data.get("open"):
                return str(data["series"]), int(data["part"]) + 1
        except (ValueError, KeyError, TypeError):
            logger.warning("session %s: unreadable recording series %.80r", session_id, raw)
        return None

    async def _write(self, session_id: str, data: dict[str, Any]) -> None:
        key = series_key(session_id)
        value = self._redis.signer.sign(key, json.dumps(data))
        try:
            await self._redis.run(lambda r: r.set(key, value, ex=SERIES_TTL_S))
        except RedisUnavailable:
            logger.warning("session %s: recording series not written (Redis is down)", session_id)

    async def started(self, session_id: str, series: str, part: int, recording_id: str) -> None:
        data = {
            "series": series,
            "part": part,
            "recording": recording_id,
            "node": self._node,
            "open": True,
        }
        await self._write(session_id, data)

    async def stopped(self, session_id: str) -> None:
        await self._write(session_id, {"open": False, "node": self._node})
