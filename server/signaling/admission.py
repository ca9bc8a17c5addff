"""Who may hold a socket before joining: token-less (not joined) sockets
are bounded per remote address and in total, and closed when they stay
unauthenticated for too long. A socket counts until its transport is gone
(``gone``), also while the server is closing it: a client that ignores the
close gets no extra socket past the limits."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from server.core.config import Limits

#: refusal reasons (metric labels)
PER_ADDRESS = "unauthenticated_per_address"
TOTAL = "unauthenticated_total"
TIMEOUT = "unauthenticated_timeout"


@dataclass
class _Socket:
    remote: str
    deadline: float | None  # None once joined
    #: the server is closing it: it no longer expires, it counts until gone
    closing: bool = False


class Admission:
    """Keyed by transport connection id. Pure bookkeeping: the caller closes
    what ``expired`` returns."""

    def __init__(self, limits: Limits, now_fn: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._now = now_fn
        self._sockets: dict[str, _Socket] = {}
        self._pending_by_remote: dict[str, int] = {}
        self._pending = 0

    def admit(self, key: str, remote: str) -> str | None:
        """Admit a new socket (not joined yet); a reason if refused."""
        if self._pending_by_remote.get(remote, 0) >= self._limits.max_unauthenticated_per_address:
            return PER_ADDRESS
        if self._pending >= self._limits.max_unauthenticated_sockets:
            return TOTAL
        self._sockets[key] = _Socket(remote, None)
        self._set_pending(key, True)
        return None

    def joined(self, key: str, joined: bool) -> None:
        """The socket joined a session (or left it / was removed)."""
        if key in self._sockets:
            self._set_pending(key, not joined)

    def gone(self, key: str) -> None:
        if key in self._sockets:
            self._set_pending(key, False)
            del self._sockets[key]

    def closing(self, key: str) -> None:
        """The server is closing this socket: it counts until ``gone``."""
        if key in self._sockets:
            self._sockets[key].closing = True

    def expired(self) -> list[str]:
        """Sockets unauthenticated for longer than the limit (and not
        being closed already)."""
        now = self._now()
        return [
            k
            for k, s in self._sockets.items()
            if s.deadline is not None and s.deadline <= now and not s.closing
        ]

    @property
    def pending(self) -> int:
        return self._pending

    def _set_pending(self, key: str, pending: bool) -> None:
        sock = self._sockets[key]
        if (sock.deadline is not None) == pending:
            return
        delta = 1 if pending else -1
        sock.deadline = self._now() + self._limits.unauthenticated_timeout_s if pending else None
        self._pending += delta
        count = self._pending_by_remote.get(sock.remote, 0) + delta
        if count:
            self._pending_by_remote[sock.remote] = count
        else:
            self._pending_by_remote.pop(sock.remote, None)
