"""What a node writes to Redis is signed with the deployment's secret, and
what it reads is believed only if the signature holds.

Redis is shared and may be reachable by more than the nodes: whoever can
write to it could otherwise announce a node (its URL), claim a lesson for
it, or change a lesson's record. Every value the nodes act on (heartbeats,
session -> node entries, recording series, session records) is stored as
``<hmac>:<value>``, the HMAC-SHA256 of the Redis key and the value under a
key derived from ``SIDECOACH_SECRET`` (never the secret itself). A value
without a valid signature is ignored, logged (rate-limited) and counted by
kind in ``/metrics`` (``sidecoach_redis_entries_refused_total``); binding
the key means an entry cannot be moved to another key either. A replayed
old entry of a real node is still possible: it can delay, never redirect
anything to a place the deployment does not own (see ``links.py``: a node
also proves itself before any credential goes to it).
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from server.core.ratelimit import LogLimiter

logger = logging.getLogger(__name__)

#: the entry kinds (metric label values)
NODE, SESSION, SERIES, RECORD = "node", "session", "series", "record"
_MAC_HEX = 64


def derive_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose, derived from the deployment secret."""
    return hmac.new(secret.encode(), f"sidecoach/{purpose}".encode(), hashlib.sha256).digest()


def holder_of(raw: str) -> str:
    """The value of a signed entry without checking it (e.g. which node an
    entry names, for a log line); see ``EntrySigner.open`` for belief."""
    mac, sep, value = raw.partition(":")
    return value if sep and len(mac) == _MAC_HEX else raw


class EntrySigner:
    def __init__(self, secret: str) -> None:
        self._key = derive_key(secret, "redis-entries/v1")
        #: kind -> entries refused so far
        self.refused: dict[str, int] = {}
        self._warnings = LogLimiter(10)

    def _mac(self, key: str, value: str) -> str:
        return hmac.new(self._key, f"{key}\n{value}".encode(), hashlib.sha256).hexdigest()

    def sign(self, key: str, value: str) -> str:
        return f"{self._mac(key, value)}:{value}"

    def open(self, kind: str, key: str, raw: str | None) -> str | None:
        """The value of a signed entry, or None if there is none or its
        signature does not hold (counted, and logged now and then)."""
        if raw is None:
            return None
        mac, sep, value = raw.partition(":")
        if sep and len(mac) == _MAC_HEX and hmac.compare_digest(mac, self._mac(key, value)):
            return value
        self.refused[kind] = self.refused.get(kind, 0) + 1
        allowed, suppressed = self._warnings.allow()
        if allowed:
            logger.warning(
                "ignored %s: not signed with this deployment's secret (another"
                " SIDECOACH_SECRET, or written by someone else)%s",
                key,
                f" (and {suppressed} more not logged)" if suppressed else "",
            )
        return None
