"""One node or many: the ``Deployment`` seam, chosen once by the
composition root (``server/app.py``).

Everything that differs between a single node and a deployment of several
(on Redis, ``server/cluster/``) is asked of this one object:

* the session manager: is a session hosted on another node, and what to do
  when one opens here (it may continue another node's clock and recording);
* the signaling edge: where a ``join`` goes (here, or handed over to the
  session's node);
* the admin API: end a session and describe it, wherever it lives;
* the app: extra routes and middlewares, start/stop, readiness, metrics,
  drain.

``LocalDeployment`` is the single node: everything is here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from prometheus_client.core import Metric

if TYPE_CHECKING:
    from server.live.manager import SessionManager
    from server.live.session import Session
    from server.signaling.transport import EdgeServer


class Deployment(Protocol):
    #: this node's name in the deployment ("" on a single node)
    node_id: str
    #: prefix of this node's Engine.IO session ids ("" on a single node)
    sid_prefix: str

    def bind(self, manager: SessionManager, sio: EdgeServer) -> None:
        """The app made this node's session manager and socket server."""
        ...

    # -- the session manager --------------------------------------------------

    def hosted_elsewhere(self, session_id: str) -> bool:
        """Whether another (live) node hosts this session."""
        ...

    async def opening(self, session: Session) -> None:
        """A session opens on this node (it may have lived on another)."""
        ...

    # -- the signaling edge -----------------------------------------------------

    async def route_join(self, data: Any, eio_sid: str, remote: str) -> Any:
        """None: join here; a transport ``Pipe``: hand the socket over to
        the node hosting the session; a dict: the reply."""
        ...

    # -- the admin API ----------------------------------------------------------

    async def end_session(self, session_id: str, reason: str) -> None:
        """End the session on whichever node hosts it, and mark it ended."""
        ...

    def live_summary(self, session_id: str) -> dict[str, Any] | None:
        """Participants by role etc. (and the node), or None if live nowhere."""
        ...

    # -- the app ----------------------------------------------------------------

    def install(self, app: web.Application) -> None:
        """Add this deployment's routes and middlewares."""
        ...

    async def start(self, url: str) -> None:
        """Join the deployment (``url``: where other nodes reach this one)."""
        ...

    def begin_drain(self) -> None:
        """No new sessions here."""
        ...

    async def stop(self) -> None:
        """Leave the deployment and close what it opened."""
        ...

    def not_ready(self) -> list[str]:
        """Why this node should get no new sessions (empty: ready)."""
        ...

    def describe(self) -> dict[str, Any]:
        """For ``/readyz``."""
        ...

    def metrics(self) -> Iterator[Metric]:
        """For ``/metrics``."""
        ...


class LocalDeployment:
    """A single node: every session is here."""

    node_id = ""
    sid_prefix = ""

    def __init__(self) -> None:
        self._manager: SessionManager | None = None

    def bind(self, manager: SessionManager, sio: EdgeServer) -> None:
        self._manager = manager

    def hosted_elsewhere(self, session_id: str) -> bool:
        return False

    async def opening(self, session: Session) -> None:
        return None

    async def route_join(self, data: Any, eio_sid: str, remote: str) -> Any:
        return None

    async def end_session(self, session_id: str, reason: str) -> None:
        assert self._manager is not None
        await self._manager.end_session(session_id, reason=reason)

    def live_summary(self, session_id: str) -> dict[str, Any] | None:
        assert self._manager is not None
        return self._manager.live_summary(session_id)

    def install(self, app: web.Application) -> None:
        return None

    async def start(self, url: str) -> None:
        return None

    def begin_drain(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def not_ready(self) -> list[str]:
        return []

    def describe(self) -> dict[str, Any]:
        return {}

    def metrics(self) -> Iterator[Metric]:
        return iter(())
