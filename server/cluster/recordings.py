"""Recordings on several boxes: each stays on the disk of the node that
wrote it; any node's recording API answers for all of them.

Nodes of one box share the data directory, so this does nothing for them.
Across boxes, a request for a recording this node does not have is passed
to the other live nodes (their node URLs, with the caller's token: the node
that has it checks the token and audits the read, as for any request) and
the first answer that is not 404 is returned; ``GET /api/recordings``
merges every node's list. A node that is down takes its recordings with it
until it is back.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from server.recording.catalog import RecordingCatalog

logger = logging.getLogger(__name__)

#: on a request passed on by a node: answer from this node's disk only
FORWARDED_HEADER = "X-Sidecoach-Forwarded"
_ONE = re.compile(r"^/(?:api/)?recordings/([A-Za-z0-9][A-Za-z0-9._-]{0,127})(?:/.*)?$")
_PASSED = ("Authorization", "Range", "If-Range", "Content-Type")
TIMEOUT_S = 30.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RecordingsAcrossNodes:
    def __init__(
        self, catalog: RecordingCatalog, other_urls: Callable[[], list[str]]
    ) -> None:
        self._catalog = catalog
        self._other_urls = other_urls
        self._client: aiohttp.ClientSession | None = None
        self.forwarded = 0

    def _http(self) -> aiohttp.ClientSession:
        if self._client is None:
            self._client = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_S), auto_decompress=False
            )
        return self._client

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if FORWARDED_HEADER in request.headers or not (
            path == "/api/recordings" or _ONE.match(path)
        ):
            return await handler(request)
        if path == "/api/recordings":
            return await self._merged_list(request, handler)
        match = _ONE.match(path)
        assert match is not None
        if await self._catalog.get(match.group(1)) is not None:
            return await handler(request)
        for url in self._other_urls():
            response = await self._pass_on(request, url)
            if response is not None:
                return response
        return await handler(request)  # nobody has it: this node's 404

    def _headers(self, request: web.Request) -> dict[str, str]:
        headers = {h: request.headers[h] for h in _PASSED if h in request.headers}
        headers[FORWARDED_HEADER] = "1"
        return headers

    async def _pass_on(self, request: web.Request, url: str) -> web.StreamResponse | None:
        body = await request.read()
        try:
            async with self._http().request(
                request.method, url + request.rel_url.path_qs, data=body or None,
                headers=self._headers(request),
            ) as resp:  # fmt: skip
                if resp.status == 404:
                    return None
                self.forwarded += 1
                out = web.StreamResponse(status=resp.status)
                for name in ("Content-Type", "Content-Range", "Accept-Ranges", "Cache-Control",
                             "X-Content-Type-Options"):  # fmt: skip
                    if name in resp.headers:
                        out.headers[name] = resp.headers[name]
                if resp.content_length is not None:
                    out.content_length = resp.content_length
                await out.prepare(request)
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    await out.write(chunk)
                await out.write_eof()
                return out
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("recording request to node %s failed: %s", url, exc)
            return None

    async def _merged_list(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        local = await handler(request)
        if not isinstance(local, web.Response) or local.status != 200 or local.body is None:
            return local
        merged = json.loads(bytes(local.body))  # type: ignore[arg-type]
        seen = {r["id"] for r in merged["recordings"]}
        for url in self._other_urls():
            try:
                async with self._http().get(
                    url + request.rel_url.path_qs, headers=self._headers(request)
                ) as resp:
                    if resp.status != 200:
                        continue
                    for row in (await resp.json()).get("recordings", []):
                        if row.get("id") not in seen:
                            seen.add(row.get("id"))
                            merged["recordings"].append(row)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                logger.warning("listing the recordings of node %s failed: %s", url, exc)
        merged["recordings"].sort(key=lambda r: (r.get("started_at") or 0, r.get("id")))
        kept = {h: local.headers[h] for h in ("Cache-Control", "X-Content-Type-Options")
                if h in local.headers}  # fmt: skip
        return web.json_response(merged, headers=kept)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
