"""The admin API's session control on any node (``http_api.SessionControl``):
a session live on another node is ended there, and described from that
node's heartbeat."""

from __future__ import annotations

import logging
from typing import Any

from server.cluster.node import ClusterNode
from server.core.errors import SidecoachError
from server.live.manager import SessionManager

logger = logging.getLogger(__name__)


class DeploymentControl:
    def __init__(self, manager: SessionManager, node: ClusterNode) -> None:
        self._manager = manager
        self._node = node

    async def end_session(self, session_id: str) -> None:
        if self._manager.get(session_id) is None:
            try:
                if await self._node.end_remote(session_id, "ended by an admin"):
                    return
            except SidecoachError as exc:
                # marked ended in the store below; its node ends it at its next sweep
                logger.warning("session %s: could not reach its node: %s", session_id, exc)
        await self._manager.end_session(session_id, reason="ended by an admin")

    def live_summary(self, session_id: str) -> dict[str, Any] | None:
        local = self._manager.live_summary(session_id)
        if local is not None:
            return {**local, "node": self._node.node_id}
        return self._node.live_summary(session_id)
