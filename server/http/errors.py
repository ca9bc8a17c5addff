"""The one error path of the HTTP edge: a handler raises a ``SidecoachError``
and this middleware answers ``{"error": {"code", "message"}}`` with the
error's own status, counts the refusal in ``/metrics`` and logs a 500 with
its traceback. No handler catches ``SidecoachError`` itself."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from server.core.errors import MethodNotAllowed, SidecoachError
from server.http.replies import JSON_HEADERS
from server.ops.metrics import Metrics

logger = logging.getLogger(__name__)


def error_response(exc: SidecoachError) -> web.Response:
    headers = dict(JSON_HEADERS)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="sidecoach"'
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = exc.allow
    body = {"error": {"code": exc.code, "message": exc.message}}
    return web.json_response(body, status=exc.status, headers=headers)


def error_middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except SidecoachError as exc:
            metrics.http_refusals.labels(exc.code).inc()
            if exc.status >= 500:
                logger.exception("%s %s failed", request.method, request.path)
            return error_response(exc)

    return errors
