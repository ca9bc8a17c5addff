"""Signed-in browsers: the login cookie, CSRF, and "who is this person".

The cookie (``sidecoach_login``) is HttpOnly, SameSite=Lax, and Secure when
the server is reached over HTTPS; it holds a random token whose hash finds
the login session in the database (``people/logins.py``). Every state
change that a cookie authenticates (any method but GET/HEAD/OPTIONS, and
no ``Authorization`` header) must carry the page's CSRF token, as the
``X-CSRF-Token`` header or a ``csrf`` form field, and must not come from
another origin. Requests with a bearer token (scripts, invites) are not
cookie-authenticated and are checked as before.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from server.people.errors import CsrfFailed, NotSignedIn, PasswordChangeRequired
from server.people.logins import Login
from server.people.principal import Principal
from server.people.service import People

logger = logging.getLogger(__name__)

COOKIE = "sidecoach_login"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: a cookie-authenticated change needs no CSRF token here: the sign-in form
#: (no session yet; a new one is always made)
CSRF_EXEMPT = frozenset({"/auth/login"})
PEOPLE_KEY = web.AppKey("people", People)
#: the request's login session (None: not signed in)
LOGIN = web.RequestKey("login", Login)
#: most characters of a ``next=`` target kept
MAX_NEXT_CHARS = 512


def safe_next(value: str | None, default: str = "/home") -> str:
    """A same-site path to go to after signing in, never another site:
    ``//evil``, ``/\\evil``, ``https://evil`` and anything odd become ``default``."""
    if not value or len(value) > MAX_NEXT_CHARS:
        return default
    if not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(c in value for c in "\r\n\t\\"):
        return default
    return value


def set_login_cookie(
    response: web.StreamResponse, token: str, *, secure: bool, max_age: float
) -> None:
    response.set_cookie(
        COOKIE, token, httponly=True, secure=secure, samesite="Lax", path="/", max_age=int(max_age)
    )


def clear_login_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")


def _same_origin(request: web.Request) -> bool:
    """False for a request that says it comes from another site. Pages send
    no referrer, so a browser's own form posts say ``Origin: null``: those
    rest on the CSRF token (and the SameSite cookie) alone."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc == request.host


@web.middleware
async def login_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.cookies.get(COOKIE)
    login: Login | None = None
    if token and not request.path.startswith(("/static/", "/vendor/", "/socket.io/")):
        login = await request.app[PEOPLE_KEY].logins.find(token)
    if login is not None:
        request[LOGIN] = login
    cookie_auth = token is not None and not has_bearer(request)
    changes = request.method not in SAFE_METHODS and request.path not in CSRF_EXEMPT
    if cookie_auth and changes and not request.path.startswith("/socket.io/"):
        await _check_csrf(request, login)
    return await handler(request)


async def _check_csrf(request: web.Request, login: Login | None) -> None:
    if not _same_origin(request):
        raise CsrfFailed("this change came from another site")
    if login is None:
        return  # not signed in: the route itself refuses
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()
        field = form.get(CSRF_FIELD)
        given = field if isinstance(field, str) else None
    if not login.csrf_ok(given):
        raise CsrfFailed("this page's form is out of date: reload it and try again")


def login_of(request: web.Request) -> Login:
    if LOGIN not in request:
        raise NotSignedIn("sign in first")
    return request[LOGIN]


def signed_in(request: web.Request) -> bool:
    return LOGIN in request


async def principal_of(request: web.Request, *, allow_password_change: bool = False) -> Principal:
    """The signed-in person (raises ``not_signed_in``; ``password_change_required``
    until an admin-set password is changed)."""
    login = login_of(request)
    person = await request.app[PEOPLE_KEY].directory.principal(login.person_id)
    if person.must_change_password and not allow_password_change:
        raise PasswordChangeRequired("choose a new password first (/account/password)")
    return person


def has_bearer(request: web.Request) -> bool:
    """Whether the request brings a token (admin or invite) rather than a
    login: a non-empty ``Authorization`` header or ``token`` parameter. An
    empty one (a page without a token) is no token: the login decides, and
    the CSRF check applies."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return bool(header.strip() and (scheme.lower() != "bearer" or value.strip())) or bool(
        request.query.get("token", "").strip()
    )


def form_text(form: Any, name: str, max_chars: int = 2000) -> str:
    value = form.get(name)
    return value.strip()[:max_chars] if isinstance(value, str) else ""
