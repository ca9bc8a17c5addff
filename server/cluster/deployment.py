"""The deployment of several nodes on Redis (``live.deployment.Deployment``):
this node (``node.py``: heartbeats, placement, faults), the long-polling
forwarder (``forward.py``), recordings on other boxes (``recordings.py``)
and the admin API's reach to sessions on other nodes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, Metric

from server.cluster.forward import PollingForwarder
from server.cluster.node import ClusterNode, sid_tag
from server.cluster.recordings import RecordingsAcrossNodes
from server.cluster.redis_conn import RedisConn
from server.core.config import Config, node_id_of
from server.core.errors import SidecoachError
from server.live.manager import SessionManager
from server.live.session import Session
from server.recording.catalog import RecordingCatalog
from server.signaling.transport import EdgeServer

logger = logging.getLogger(__name__)


class ClusterDeployment:
    def __init__(
        self, config: Config, catalog: RecordingCatalog, redis: RedisConn | None = None
    ) -> None:
        """``redis``: the session store's connection when sessions are in
        Redis too (else the node opens its own)."""
        self.config = config
        self.node_id = node_id_of(config)
        self.sid_prefix = sid_tag(self.node_id)
        self._catalog = catalog
        self._redis = redis
        self._node: ClusterNode | None = None
        self._manager: SessionManager | None = None
        self._forwarder: PollingForwarder | None = None
        #: several boxes: each serves the recordings on its own disk
        self._across: RecordingsAcrossNodes | None = None

    @property
    def node(self) -> ClusterNode:
        assert self._node is not None, "bind() first"
        return self._node

    def bind(self, manager: SessionManager, sio: EdgeServer) -> None:
        self._manager = manager
        self._node = ClusterNode(self.config, sio, self._catalog, self._redis)
        self._node.manager = manager
        self._forwarder = PollingForwarder(self._node.tag, self._node.url_of_tag)
        if self.config.store == "redis" or self.config.database_url:
            self._across = RecordingsAcrossNodes(self._catalog, self._node.other_urls)

    # -- the session manager and the signaling edge ---------------------------------

    def hosted_elsewhere(self, session_id: str) -> bool:
        return self.node.hosted_elsewhere(session_id)

    async def opening(self, session: Session) -> None:
        await self.node.opening(session)

    async def route_join(self, data: Any, eio_sid: str, remote: str) -> Any:
        return await self.node.route_join(data, eio_sid, remote)

    # -- the admin API --------------------------------------------------------------

    async def end_session(self, session_id: str, reason: str) -> None:
        assert self._manager is not None
        if self._manager.get(session_id) is None:
            try:
                if await self.node.end_remote(session_id, reason):
                    return
            except SidecoachError as exc:
                # marked ended in the store below; its node ends it at its next sweep
                logger.warning("session %s: could not reach its node: %s", session_id, exc)
        await self._manager.end_session(session_id, reason=reason)

    def live_summary(self, session_id: str) -> dict[str, Any] | None:
        assert self._manager is not None
        local = self._manager.live_summary(session_id)
        if local is not None:
            return {**local, "node": self.node_id}
        return self.node.live_summary(session_id)

    # -- the app ----------------------------------------------------------------------

    def install(self, app: web.Application) -> None:
        self.node.setup_routes(app)
        assert self._forwarder is not None
        app.middlewares.append(self._forwarder.middleware)
        if self._across is not None:
            app.middlewares.append(self._across.middleware)

    async def start(self, url: str) -> None:
        await self.node.start(url)

    def begin_drain(self) -> None:
        self.node.begin_drain()

    async def stop(self) -> None:
        await self.node.stop()
        if self._forwarder is not None:
            await self._forwarder.close()
        if self._across is not None:
            await self._across.close()

    def not_ready(self) -> list[str]:
        return self.node.not_ready()

    def describe(self) -> dict[str, Any]:
        return self.node.describe()

    def metrics(self) -> Iterator[Metric]:
        yield from self.node.metrics()
        if self._forwarder is not None:
            yield CounterMetricFamily(
                "sidecoach_longpoll_forwarded",
                "long-polling requests forwarded to the node holding their socket",
                value=self._forwarder.forwarded,
            )
