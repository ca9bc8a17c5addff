"""What travels on node links: the socket.io packets of handed-over
sockets, and requests between nodes.

Edge node (holds the client's connection) -> host node (hosts its session):
``["open", conn, remote]`` a socket is handed over, ``["up", conn, packet]``
a socket.io packet from the client, ``["bye", conn]`` the client is gone.
Host -> edge: ``["down", conn, packet]`` a packet for the client,
``["drop", conn]`` the host closed the socket. Either way:
``["req", id, method, params]`` / ``["res", id, ok, result]``.

``conn`` is the client's Engine.IO session id on the edge node. The host
runs the socket as a virtual one (``transport.EdgeServer.open_virtual``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from server.cluster.errors import NodeUnavailable, RemoteError, UnknownRequest
from server.cluster.links import Frame, Link, LinkHub
from server.core.errors import SidecoachError
from server.core.tasks import TaskOwner
from server.signaling.transport import EdgeServer

logger = logging.getLogger(__name__)

RequestHandler = Callable[[dict[str, Any]], Awaitable[Any]]


class _EdgePipe:
    """The edge's end of one handed-over socket."""

    def __init__(self, relay: Relay, link: Link, conn: str) -> None:
        self._relay, self._link, self._conn = relay, link, conn

    def send(self, data: str) -> None:
        self._link.send(["up", self._conn, data])

    def close(self) -> None:
        if self._relay.edge.pop(self._conn, None) is not None:
            self._link.send(["bye", self._conn])


class _HostPipe:
    """The host's end of one handed-over socket."""

    def __init__(self, relay: Relay, link: Link, conn: str) -> None:
        self._relay, self._link, self._conn = relay, link, conn

    def send(self, data: str) -> None:
        self._link.send(["down", self._conn, data])

    def close(self) -> None:
        if self._relay.hosted.pop((id(self._link), self._conn), None) is not None:
            self._link.send(["drop", self._conn])


class Relay:
    """The ``LinkHandler`` of this node's links."""

    def __init__(self, sio: EdgeServer, request_timeout_s: float) -> None:
        self.sio = sio
        self.hub: LinkHub | None = None  # set by the node once made
        self.request_timeout_s = request_timeout_s
        #: edge: handed-over socket (our Engine.IO sid) -> link to its host
        self.edge: dict[str, Link] = {}
        #: host: (link, edge's conn) -> virtual Engine.IO sid here
        self.hosted: dict[tuple[int, str], str] = {}
        self.handlers: dict[str, RequestHandler] = {}
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[Link, asyncio.Future[Any]]] = {}
        self._tasks = TaskOwner("node requests")

    # -- edge --------------------------------------------------------------

    async def hand_over(self, peer: str, eio_sid: str, remote: str) -> _EdgePipe:
        """Hand this client's socket to ``peer``; raises NodeUnavailable."""
        assert self.hub is not None
        link = await self.hub.link_to(peer)
        self.edge[eio_sid] = link
        link.send(["open", eio_sid, remote])
        return _EdgePipe(self, link, eio_sid)

    # -- requests -------------------------------------------------------------

    async def request(self, peer: str, method: str, params: dict[str, Any]) -> Any:
        """Ask ``peer`` to do ``method``; its result, or the error it raised
        (as SidecoachError), or NodeUnavailable."""
        assert self.hub is not None
        link = await self.hub.link_to(peer)
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = (link, future)
        link.send(["req", request_id, method, params])
        try:
            return await asyncio.wait_for(future, self.request_timeout_s)
        except TimeoutError:
            raise NodeUnavailable(f"node {peer} did not answer {method}") from None
        finally:
            self._waiting.pop(request_id, None)

    async def _answer(self, link: Link, request_id: Any, method: Any, params: Any) -> None:
        handler = self.handlers.get(str(method))
        try:
            if handler is None:
                raise UnknownRequest(f"unknown request {method!r}")
            result = await handler(params if isinstance(params, dict) else {})
            link.send(["res", request_id, True, result])
        except SidecoachError as exc:
            link.send(["res", request_id, False, {"code": exc.code, "message": exc.message}])
        except Exception:
            logger.exception("request %s from node %s failed", method, link.peer)
            link.send(["res", request_id, False, {"code": "internal", "message": "failed"}])

    # -- LinkHandler ----------------------------------------------------------

    async def on_frame(self, link: Link, frame: Frame) -> None:
        kind = frame[0]
        if kind == "up" and len(frame) == 3 and isinstance(frame[2], str):
            eio_sid = self.hosted.get((id(link), str(frame[1])))
            if eio_sid is not None:
                await self.sio.from_edge(eio_sid, frame[2])
        elif kind == "down" and len(frame) == 3 and isinstance(frame[2], str):
            if self.edge.get(str(frame[1])) is link:
                await self.sio.to_client(str(frame[1]), frame[2])
        elif kind == "open" and len(frame) == 3:
            key = (id(link), str(frame[1]))
            pipe = _HostPipe(self, link, str(frame[1]))
            self.hosted[key] = ""  # reserved: frames for it wait in order behind this one
            eio_sid = await self.sio.open_virtual(pipe, str(frame[2]))
            if eio_sid is not None and key in self.hosted:
                self.hosted[key] = eio_sid
        elif kind == "bye" and len(frame) == 2:
            eio_sid = self.hosted.pop((id(link), str(frame[1])), None)
            if eio_sid:
                await self.sio.virtual_closed(eio_sid)
        elif kind == "drop" and len(frame) == 2:
            if self.edge.get(str(frame[1])) is link:
                del self.edge[str(frame[1])]
                await self.sio.host_closed(str(frame[1]))
        elif kind == "req" and len(frame) == 4:
            self._tasks.spawn(self._answer(link, frame[1], frame[2], frame[3]), name="request")
        elif kind == "res" and len(frame) == 4:
            waiting = self._waiting.get(int(frame[1])) if isinstance(frame[1], int) else None
            if waiting is not None and waiting[0] is link and not waiting[1].done():
                if frame[2]:
                    waiting[1].set_result(frame[3])
                else:
                    err = frame[3] if isinstance(frame[3], dict) else {}
                    waiting[1].set_exception(
                        RemoteError(str(err.get("message", "failed")), str(err.get("code")))
                    )
        else:
            logger.warning("link to node %s: unexpected frame %.20s", link.peer, kind)

    async def on_link_closed(self, link: Link) -> None:
        """Every socket carried by the link is closed (clients reconnect and
        are placed again); requests waiting on it fail."""
        for conn in [c for c, x in self.edge.items() if x is link]:
            del self.edge[conn]
            await self.sio.host_closed(conn)
        for key in [k for k in self.hosted if k[0] == id(link)]:
            eio_sid = self.hosted.pop(key)
            if eio_sid:
                await self.sio.virtual_closed(eio_sid)
        for request_id, (on, future) in list(self._waiting.items()):
            if on is link and not future.done():
                future.set_exception(NodeUnavailable(f"the link to node {link.peer} closed"))
                self._waiting.pop(request_id, None)

    async def close(self) -> None:
        await self._tasks.aclose()
