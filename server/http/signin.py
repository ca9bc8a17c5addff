"""Signing in and out: the sign-in page (a password form, and the district
provider's button when one is configured), the OIDC redirect and callback,
the password change an admin-set password needs, and sign-out.

| route | what |
|---|---|
| GET /signin?next= | the page |
| POST /auth/login | e-mail + password -> a new login session, then ``next`` |
| GET /auth/oidc/start?next= | to the provider (state, nonce, PKCE) |
| GET /auth/oidc/callback | back from it: verified, matched, signed in |
| GET/POST /account/password | change the password (required after an admin set it) |
| POST /auth/logout | this login session ends, its live sockets too |
"""

from __future__ import annotations

import logging

from aiohttp import web

from server.core.config import Config
from server.http.login import (
    LOGIN,
    clear_login_cookie,
    form_text,
    login_of,
    principal_of,
    safe_next,
    set_login_cookie,
)
from server.http.pages import Renderer
from server.people.errors import (
    AccountDisabled,
    AccountLocked,
    OidcFailed,
    PasswordChangeRequired,
    SignInFailed,
)
from server.people.service import People

logger = logging.getLogger(__name__)


class SignIn:
    def __init__(self, config: Config, people: People, pages: Renderer) -> None:
        self.config = config
        self.people = people
        self.pages = pages

    @property
    def _secure(self) -> bool:
        return self.config.tls or self.config.public_url.startswith("https://")

    def _page(
        self, request: web.Request, *, error: str = "", status: int = 200, next_: str = ""
    ) -> web.Response:
        return self.pages.render(
            "signin.html",
            status=status,
            title="Sign in",
            page=None,
            next=next_ or safe_next(request.query.get("next")),
            error=error,
            oidc=self.people.oidc.enabled,
            oidc_label=self.config.oidc_label,
        )

    async def page(self, request: web.Request) -> web.Response:
        return self._page(request)

    def _signed_in(self, token: str, target: str) -> web.HTTPSeeOther:
        response = web.HTTPSeeOther(target)
        set_login_cookie(
            response, token, secure=self._secure, max_age=self.config.limits.login_session_ttl_s
        )
        return response

    async def _end_old(self, request: web.Request) -> None:
        """A sign-in never keeps the browser's earlier session (fixation)."""
        old = request.get(LOGIN)
        if old is not None:
            await self.people.logins.end(old.id_hash)

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        email, password = form_text(form, "email", 254), form_text(form, "password", 300)
        target = safe_next(form_text(form, "next", 600))
        try:
            token, login = await self.people.accounts.sign_in_password(
                email, password, request.remote or ""
            )
        except (SignInFailed, AccountLocked, AccountDisabled) as exc:
            return self._page(request, error=exc.message, status=exc.status, next_=target)
        await self._end_old(request)
        person = await self.people.directory.row(login.person_id)
        if person.must_change_password:
            target = "/account/password?next=" + target
        raise self._signed_in(token, target)

    async def oidc_start(self, request: web.Request) -> web.StreamResponse:
        if not self.people.oidc.enabled:
            raise OidcFailed("no identity provider is configured here")
        self.people.accounts.check_rate(request.remote or "")
        url = await self.people.oidc.begin(safe_next(request.query.get("next")))
        raise web.HTTPSeeOther(url)

    async def oidc_callback(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        try:
            if "error" in q:
                raise OidcFailed(f"the provider refused the sign-in ({q.get('error', '')[:60]})")
            identity, target = await self.people.oidc.finish(q.get("state", ""), q.get("code", ""))
            token, _ = await self.people.accounts.sign_in_oidc(identity, request.remote or "")
        except (OidcFailed, AccountDisabled) as exc:
            await self.people.audit.append(
                {
                    "action": "sign-in-refused",
                    "method": "oidc",
                    "reason": exc.message,
                    "address": request.remote or "",
                }
            )
            return self._page(request, error=exc.message, status=exc.status)
        await self._end_old(request)
        raise self._signed_in(token, safe_next(target))

    async def logout(self, request: web.Request) -> web.StreamResponse:
        login = request.get(LOGIN)
        if login is not None:
            await self.people.accounts.sign_out(login)
        response = web.HTTPSeeOther("/signin")
        clear_login_cookie(response)
        raise response

    async def password_page(self, request: web.Request, *, error: str = "") -> web.Response:
        person = await principal_of(request, allow_password_change=True)
        return self.pages.render(
            "password.html",
            title="Choose a password",
            page=None,
            person=person,
            required=person.must_change_password,
            csrf=login_of(request).csrf,
            next=safe_next(request.query.get("next")),
            error=error,
        )

    async def password(self, request: web.Request) -> web.StreamResponse:
        person = await principal_of(request, allow_password_change=True)
        form = await request.post()
        old, new = form_text(form, "old", 300), form_text(form, "new", 300)
        try:
            await self.people.accounts.change_password(person.person_id, old, new)
        except (SignInFailed, PasswordChangeRequired) as exc:
            return await self.password_page(request, error=exc.message)
        except Exception as exc:
            if getattr(exc, "code", "") == "invalid_message":
                return await self.password_page(request, error=str(exc))
            raise
        raise web.HTTPSeeOther(safe_next(form_text(form, "next", 600)))


def setup_signin(app: web.Application, config: Config, people: People, pages: Renderer) -> None:
    s = SignIn(config, people, pages)
    app.router.add_get("/signin", s.page)
    app.router.add_post("/auth/login", s.login)
    app.router.add_get("/auth/oidc/start", s.oidc_start)
    app.router.add_get("/auth/oidc/callback", s.oidc_callback)
    app.router.add_post("/auth/logout", s.logout)
    app.router.add_get("/account/password", s.password_page)
    app.router.add_post("/account/password", s.password)
