"""Token -> who is asking, for every HTTP route: an admin token, or an
invite for one session (its role decides what it may read and do)."""

from __future__ import annotations

from aiohttp import web

from server.access.policy import Reader
from server.core.errors import Unauthorized
from server.core.tokens import verify_admin_token, verify_invite


def bearer(request: web.Request, *, query: bool = True) -> str:
    """The token of ``Authorization: Bearer ...`` (or ``?token=`` where a
    page cannot set headers: media elements, downloads)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    token = request.query.get("token", "") if query else ""
    if not token:
        raise Unauthorized("a token is required (Authorization: Bearer ...)")
    return token


def admin(request: web.Request, secret: str) -> str:
    """The caller's admin token (checked; only in the header)."""
    token = bearer(request, query=False)
    verify_admin_token(secret, token)
    return token


def reader(request: web.Request, secret: str) -> tuple[Reader, str | None]:
    """Who is asking, and the session their invite is for (None: admin)."""
    token = bearer(request)
    try:
        verify_admin_token(secret, token)
        return Reader.admin(), None
    except Unauthorized:
        claims = verify_invite(secret, token)
        return Reader(claims.role, claims.invite_id, claims.name, claims.owner), claims.session_id
