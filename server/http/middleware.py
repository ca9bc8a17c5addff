"""Middlewares every response passes through: no content-type sniffing,
and socket.io told the connection's real scheme."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler


@web.middleware
async def nosniff(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every response: browsers must not guess a content type (a recording
    or a JSON body is never run as a script or page)."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        exc.headers.setdefault("X-Content-Type-Options", "nosniff")
        raise
    if not response.prepared:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


@web.middleware
async def socketio_sees_tls(request: web.Request, handler: Handler) -> web.StreamResponse:
    """engineio's aiohttp driver takes the scheme only from X-Forwarded-Proto
    (else "http"), so its same-origin check would refuse every https page
    when Sidecoach serves TLS itself: tell it the connection's real scheme."""
    if (
        request.secure
        and request.path.startswith("/socket.io/")
        and "X-Forwarded-Proto" not in request.headers
    ):
        headers = request.headers.copy()
        headers["X-Forwarded-Proto"] = "https"
        request = request.clone(headers=headers)
    return await handler(request)
