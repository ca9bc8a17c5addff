"""Long-polling requests that reach the wrong node are forwarded.

Every Engine.IO session id starts with its node's tag (``<tag>.<random>``).
A socket.io client on long-polling makes many HTTP requests; with several
workers sharing a port (or boxes behind a load balancer without sticky
sessions) they may reach any node. A request for a session of another node
is forwarded to that node's URL and its answer passed back, so one client
stays on one node. (A WebSocket upgrade for another node's session is
refused: the client keeps polling, which works. Pages try a WebSocket first,
which is one connection and needs none of this.)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

logger = logging.getLogger(__name__)

#: longer than Engine.IO's long-poll (ping interval 25 s + grace)
FORWARD_TIMEOUT_S = 60.0
_PASSED_HEADERS = ("Content-Type", "Cookie", "Origin", "User-Agent")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class PollingForwarder:
    def __init__(self, own_tag: str, url_of_tag: Callable[[str], str | None]) -> None:
        self._own = own_tag
        self._url_of_tag = url_of_tag
        self._client: aiohttp.ClientSession | None = None
        self.forwarded = 0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/socket.io/"):
            return await handler(request)
        sid = request.query.get("sid", "")
        tag = sid.split(".", 1)[0] if "." in sid else ""
        if not tag or tag == self._own:
            return await handler(request)
        url = self._url_of_tag(tag)
        if url is None:
            return await handler(request)  # Engine.IO answers: unknown session
        if request.headers.get("Upgrade", "").lower() == "websocket":
            raise web.HTTPBadRequest(text="upgrade on the node holding this session")
        return await self._forward(request, url)

    async def _forward(self, request: web.Request, url: str) -> web.StreamResponse:
        if self._client is None:
            self._client = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S), auto_decompress=False
            )
        headers = {h: request.headers[h] for h in _PASSED_HEADERS if h in request.headers}
        headers["Host"] = request.host
        headers["X-Forwarded-For"] = str(request.remote or "")
        if request.secure:
            headers["X-Forwarded-Proto"] = "https"
        body = await request.read()
        self.forwarded += 1
        try:
            async with self._client.request(
                request.method, url + request.rel_url.path_qs, data=body or None, headers=headers
            ) as resp:
                data = await resp.read()
                # the body is passed as it came (auto_decompress is off): so is
                # its encoding (Engine.IO compresses larger payloads)
                out = {
                    k: v
                    for k, v in resp.headers.items()
                    if k.lower() in ("content-type", "content-encoding")
                }
                return web.Response(status=resp.status, body=data, headers=out)
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("forwarding a long-poll to %s failed: %s", url, exc)
            raise web.HTTPBadGateway(text="the node holding this session does not answer") from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
