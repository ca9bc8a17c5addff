"""Node links: one WebSocket between two nodes, carrying frames both ways.

A node opens a link to another (``LinkHub.link_to``) at ``GET /cluster/link``
on the other's node URL; before anything else the two prove to each other
that they share the deployment's secret, and the token that lets the
opener in is addressed to the other node, bound to this connection and
short-lived (``handshake.py``). The link stays open and is used both ways.
Every node keeps a link open to every other live node (``ensure``), so a
node that dies is noticed at once: its link drops, it is tried again
straight away, and if it does not answer, ``on_lost`` says so (the node
declares it dead without waiting for its heartbeat to expire).

Frames are JSON arrays (``[kind, ...]``); a link sends what is queued as one
WebSocket message (a JSON list of frames), so a burst costs one write. The
queue is bounded (``Limits.node_link_queue_frames``): a link that cannot
keep up is closed rather than growing, and whatever it carried reconnects.
Frames of one link are handled in order, one at a time.

Why links and not Redis pub/sub (python-socketio's ``AsyncRedisManager``):
pub/sub sends every frame through Redis (two hops), loses what is sent
while Redis is down and tells no one; a link is one hop, keeps working while
Redis is down, and a broken link is noticed at once (TCP, plus WebSocket
pings), so the sockets it carried reconnect straight away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from server.cluster import handshake
from server.cluster.errors import LinkRefused, NodeUnavailable
from server.cluster.handshake import LINK_PATH, LinkKeys
from server.core.ratelimit import LogLimiter
from server.core.tasks import TaskOwner

logger = logging.getLogger(__name__)

__all__ = ["LINK_PATH", "Link", "LinkHub"]

#: WebSocket ping interval on links (a silent peer is dropped after ~1.5 of these)
PING_S = 2.0
#: largest message on a link (a batch of frames)
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
#: link handshakes in progress at once (each waits at most a few seconds)
MAX_PENDING_HANDSHAKES = 64

Frame = list[Any]


class LinkHandler(Protocol):
    async def on_frame(self, link: Link, frame: Frame) -> None: ...

    async def on_link_closed(self, link: Link) -> None: ...


class Link:
    """One WebSocket to another node (opened by either side)."""

    def __init__(
        self,
        peer: str,
        ws: Any,
        handler: LinkHandler,
        max_queue: int,
        *,
        outbound: bool,
    ) -> None:
        self.peer = peer
        self.outbound = outbound
        self._ws = ws
        self._handler = handler
        self._max_queue = max_queue
        self._queue: deque[Frame] = deque()
        self._wakeup = asyncio.Event()
        self.closed = False
        #: it broke (the other side went away), rather than being closed here
        self.lost = False
        self.frames_sent = 0
        self.frames_received = 0
        self.batches_sent = 0
        self._tasks = TaskOwner(f"link {peer}")
        self._tasks.spawn(self._send_loop(), name=f"link to {peer}: send")

    def send(self, frame: Frame) -> None:
        """Queue a frame; never blocks. A full queue closes the link."""
        if self.closed:
            return
        if len(self._queue) >= self._max_queue:
            logger.error(
                "link to node %s: %d frames waiting, closing it (the sockets it carries reconnect)",
                self.peer,
                len(self._queue),
            )
            self._tasks.spawn(self.close(), name="link overflow")
            return
        self._queue.append(frame)
        self._wakeup.set()

    async def _send_loop(self) -> None:
        try:
            while not self.closed:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    batch = list(self._queue)
                    self._queue.clear()
                    await self._ws.send_str(json.dumps(batch, separators=(",", ":")))
                    self.frames_sent += len(batch)
                    self.batches_sent += 1
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            logger.warning("link to node %s: send failed: %s", self.peer, exc)
            self._tasks.spawn(self.close(), name="link send failed")

    async def receive(self) -> None:
        """Handle incoming frames until the link closes (then tell the handler)."""
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    if msg.type == aiohttp.WSMsgType.ERROR:
                        logger.warning("link to node %s: %s", self.peer, self._ws.exception())
                    break
                try:
                    frames = json.loads(msg.data)
                except ValueError:
                    logger.error("link to node %s: undecodable message; closing", self.peer)
                    break
                for frame in frames if isinstance(frames, list) else ():
                    if isinstance(frame, list) and frame and isinstance(frame[0], str):
                        self.frames_received += 1
                        try:
                            await self._handler.on_frame(self, frame)
                        except Exception:
                            logger.exception(
                                "link to node %s: frame %.20s failed", self.peer, frame[0]
                            )
        except (TimeoutError, ConnectionError, aiohttp.ClientError) as exc:
            logger.warning("link to node %s broke: %s", self.peer, exc)
        finally:
            self.lost = not self.closed
            await self.close()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._wakeup.set()
        with contextlib.suppress(Exception):  # closing a broken socket
            await self._ws.close()
        try:
            await self._handler.on_link_closed(self)
        finally:
            await self._tasks.aclose()


class LinkHub:
    """This node's links, by peer node id (one we opened, and those opened
    to us). ``url_of`` says where a node listens (from the heartbeats);
    ``on_lost(peer)`` hears of a peer whose link broke and that could not be
    linked to again at once."""

    def __init__(
        self,
        node_id: str,
        secret: str,
        handler: LinkHandler,
        url_of: Callable[[str], str | None],
        *,
        max_queue: int,
        connect_timeout_s: float,
        on_lost: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.node_id = node_id
        self._keys = LinkKeys(secret)
        self._handler = handler
        self._url_of = url_of
        self._max_queue = max_queue
        self._connect_timeout_s = connect_timeout_s
        self._on_lost = on_lost
        self.outbound: dict[str, Link] = {}
        self.inbound: dict[str, list[Link]] = {}
        #: peer -> whether its URL answered as that node, the last time tried
        self.reaches: dict[str, bool] = {}
        self._connecting: dict[str, asyncio.Future[Link]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._tasks = TaskOwner("node links")
        self._pending = 0
        self._closing = False
        self._refusals = LogLimiter(10)
        #: frames and messages sent by links that closed (for /metrics)
        self._retired = [0, 0]

    # -- opening -----------------------------------------------------------

    async def link_to(self, peer: str) -> Link:
        """The open link to ``peer`` (opened now if needed); raises
        NodeUnavailable when it cannot be reached."""
        link = self.outbound.get(peer)
        if link is not None and not link.closed:
            return link
        pending = self._connecting.get(peer)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Link] = asyncio.get_running_loop().create_future()
        self._connecting[peer] = future
        try:
            link = await self._connect(peer)
            future.set_result(link)
            return link
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it through shield
            raise
        finally:
            del self._connecting[peer]

    def ensure(self, peers: list[str]) -> None:
        """Keep a link open to each of ``peers`` (opened in the background)."""
        for peer in peers:
            link = self.outbound.get(peer)
            if (link is None or link.closed) and peer not in self._connecting:
                self._tasks.spawn(self._open_quietly(peer), name=f"link to {peer}: open")

    async def _open_quietly(self, peer: str) -> None:
        with contextlib.suppress(NodeUnavailable):  # logged; tried again at the next beat
            await self.link_to(peer)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = self._connect_timeout_s
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout)
            )
        return self._session

    async def _connect(self, peer: str) -> Link:
        url = self._url_of(peer)
        if url is None:
            raise NodeUnavailable(f"node {peer} is not known")
        try:
            ws, _ = await handshake.connect(
                self._http(), url, self._keys, self.node_id, peer,
                heartbeat=PING_S, max_msg_size=MAX_MESSAGE_BYTES,
            )  # fmt: skip
        except LinkRefused as exc:
            self.reaches[peer] = False
            logger.error("no link to node %s at %s: %s", peer, url, exc.message)
            raise NodeUnavailable(f"node {peer} at {url}: {exc.message}") from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.reaches[peer] = False
            raise NodeUnavailable(f"node {peer} is not answering at {url}: {exc}") from exc
        self.reaches[peer] = True
        link = Link(peer, ws, self._handler, self._max_queue, outbound=True)
        self.outbound[peer] = link
        self._tasks.spawn(self._run(link), name=f"link to {peer}")
        logger.info("link to node %s open (%s)", peer, url)
        return link

    def sent(self) -> tuple[int, int]:
        """Frames, and the WebSocket messages (batches) they went in, so far."""
        links = self.links()
        return (
            self._retired[0] + sum(x.frames_sent for x in links),
            self._retired[1] + sum(x.batches_sent for x in links),
        )

    async def _run(self, link: Link) -> None:
        await link.receive()
        self._retired[0] += link.frames_sent
        self._retired[1] += link.batches_sent
        if self.outbound.get(link.peer) is link:
            del self.outbound[link.peer]
        links = self.inbound.get(link.peer)
        if links and link in links:
            links.remove(link)
            if not links:
                del self.inbound[link.peer]
        if link.lost and not self._closing:
            await self._reopen_or_lost(link.peer)

    async def _reopen_or_lost(self, peer: str) -> None:
        """A link broke (ours or the peer's): have one open to the peer at
        once; if that fails the peer is gone (``on_lost``)."""
        try:
            await self.link_to(peer)
        except NodeUnavailable as exc:
            logger.warning("node %s: its link broke and it does not answer: %s", peer, exc)
            if self._on_lost is not None:
                await self._on_lost(peer)

    # -- accepting -----------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /cluster/link``: another node opens a link."""
        if self._pending >= MAX_PENDING_HANDSHAKES or self._closing:
            raise web.HTTPServiceUnavailable(text="too many node link handshakes")
        self._pending += 1
        try:
            ws, peer = await handshake.accept(
                request, self._keys, self.node_id, heartbeat=PING_S, max_msg_size=MAX_MESSAGE_BYTES
            )
        finally:
            self._pending -= 1
        if isinstance(peer, handshake.Abandoned):
            logger.info(
                "node link handshake from %s stopped after the hello (a probe)", request.remote
            )
            return ws
        if isinstance(peer, LinkRefused):
            allowed, suppressed = self._refusals.allow()
            if allowed:
                logger.warning(
                    "refused a node link from %s (claiming to be %.64r): %s%s",
                    request.remote,
                    request.headers.get(handshake.NODE_HEADER, ""),
                    peer.message,
                    f" (and {suppressed} more)" if suppressed else "",
                )
            return ws
        link = Link(peer, ws, self._handler, self._max_queue, outbound=False)
        self.inbound.setdefault(peer, []).append(link)
        logger.info("node %s opened a link to this node", peer)
        await self._run(link)
        return ws

    # -- using --------------------------------------------------------------

    def linked(self, peer: str) -> bool:
        """Whether a link to ``peer`` is open now (either way)."""
        return any(x.peer == peer and not x.closed for x in self.links())

    def links(self) -> list[Link]:
        return [*self.outbound.values(), *(x for v in self.inbound.values() for x in v)]

    async def drop(self, peer: str) -> None:
        """Close every link to ``peer`` (it is gone)."""
        for link in [x for x in self.links() if x.peer == peer]:
            await link.close()

    async def close(self) -> None:
        self._closing = True
        for link in self.links():
            await link.close()
        await self._tasks.aclose()
        if self._session is not None:
            await self._session.close()
