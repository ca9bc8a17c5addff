"""``GET /readyz``: whether this node takes new sessions (``/healthz`` only
says it is alive). Not ready while draining, or when it is part of a
deployment and cannot reach Redis (a load balancer should then prefer
another node for new lessons; this one keeps serving its own)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

#: each check returns the reasons it is not ready (empty: ready)
Check = Callable[[], list[str]]


def setup_readiness(
    app: web.Application, checks: list[Check], describe: Callable[[], dict[str, Any]]
) -> None:
    async def readyz(request: web.Request) -> web.Response:
        reasons = [r for check in checks for r in check()]
        body = {"ready": not reasons, "reasons": reasons, **describe()}
        return web.json_response(body, status=200 if not reasons else 503)

    app.router.add_get("/readyz", readyz)
