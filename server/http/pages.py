"""Browser pages: the lobby (``/``), the role pages behind invite links
(``/join?token=...``), static files and the vendored npm libraries.

Templates live in ``web_client/templates`` (jinja2, autoescaped); the pages'
JavaScript and CSS in ``web_client/static``; third-party browser libraries
come from ``web_client/node_modules`` (installed by ``npm install``) and are
served under ``/vendor/`` from a fixed list, never from a CDN.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from server import __version__
from server.access.policy import AccessPolicy, Item
from server.core.config import Config
from server.core.errors import Forbidden, SessionNotFound, TokenExpired, Unauthorized
from server.core.roles import Role, SessionState
from server.core.tokens import verify_invite
from server.http import auth
from server.http.replies import json_response
from server.live.deployment import Deployment
from server.storage.sessions import DEFAULT_PROMPTS, DEFAULT_TALLIES, SessionKind, SessionStore

logger = logging.getLogger(__name__)

#: a path on this server (for a "back" link): no scheme, no //host, no \\
_LOCAL_PATH = re.compile(r"/(?![/\\])[\w\-./?=&%~+]{0,2000}")

WEB_CLIENT_DIR = Path(__file__).resolve().parents[2] / "web_client"
TEMPLATES_DIR = WEB_CLIENT_DIR / "templates"
STATIC_DIR = WEB_CLIENT_DIR / "static"
NODE_MODULES_DIR = WEB_CLIENT_DIR / "node_modules"

#: /vendor/<name> -> file under web_client/node_modules (nothing else is served)
VENDOR_FILES: dict[str, str] = {
    "socket.io.esm.min.js": "socket.io-client/dist/socket.io.esm.min.js",
    "socket.io.min.js": "socket.io-client/dist/socket.io.min.js",
    "qrcode.mjs": "qrcode-generator/dist/qrcode.mjs",
    "uPlot.esm.js": "uplot/dist/uPlot.esm.js",
    "uPlot.min.css": "uplot/dist/uPlot.min.css",
}

#: role -> template of the page an invite for that role opens
ROLE_TEMPLATES: dict[Role, str] = {
    Role.TEACHER: "teacher.html",
    Role.COACH: "coach.html",
    Role.OBSERVER: "observer.html",
}

#: Pages load only our own scripts and styles; media comes from WebRTC, the
#: QR code is an inline SVG, and socket.io talks to this origin.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self' ws: wss:",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    )
)

_SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # invite and admin tokens travel in URLs: never leak them to another site
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def https_origin(config: Config) -> str:
    """The server's https:// origin when it knows one (its public URL, or
    the TLS address it listens on), else "": an insecure page names it."""
    public = config.public_url.rstrip("/")
    if public.startswith("https://"):
        scheme, _, rest = public.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"
    if config.tls and config.host not in ("0.0.0.0", "::", ""):
        return config.base_url
    return ""


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class Renderer:
    """Renders a template with the pages' security headers (for the pages of
    other modules: sign-in, home, admin)."""

    def __init__(self) -> None:
        self.env = _environment()

    def render(self, template: str, *, status: int = 200, **context: Any) -> web.Response:
        html = self.env.get_template(template).render(version=__version__, **context)
        return web.Response(
            text=html, status=status, content_type="text/html", headers=_SECURITY_HEADERS
        )


class _Pages:
    def __init__(
        self,
        config: Config,
        store: SessionStore,
        deployment: Deployment,
        policy: AccessPolicy,
    ) -> None:
        self.config = config
        self.store = store
        self.deployment = deployment
        self.policy = policy
        self.env = _environment()

    def render(self, template: str, *, status: int = 200, **context: Any) -> web.Response:
        html = self.env.get_template(template).render(
            version=__version__, https_origin=https_origin(self.config), **context
        )
        return web.Response(
            text=html, status=status, content_type="text/html", headers=_SECURITY_HEADERS
        )

    def error_page(self, status: int, title: str, message: str, hint: str) -> web.Response:
        return self.render(
            "error.html", status=status, title=title, message=message, hint=hint, page=None
        )

    async def lobby(self, request: web.Request) -> web.Response:
        page = {
            "defaults": {"prompts": list(DEFAULT_PROMPTS), "tallyCategories": list(DEFAULT_TALLIES)}
        }
        return self.render("lobby.html", title="Sidecoach", page=page)

    async def join(self, request: web.Request) -> web.Response:
        token = request.query.get("token", "")
        ask = "Ask the person who invited you for a new link."
        if not token:
            return self.error_page(
                401, "No invite in this link", "This address is missing its invite.", ask
            )
        try:
            claims = verify_invite(self.config.secret, token)
        except TokenExpired:
            return self.error_page(401, "This invite has expired", "The link is too old.", ask)
        except Unauthorized:
            return self.error_page(
                403,
                "This invite isn't valid",
                "The link may have been copied incompletely or changed.",
                ask,
            )
        try:
            record = await self.store.get(claims.session_id)
        except SessionNotFound:
            return self.error_page(
                404, "Session not found", "This session no longer exists on this server.", ask
            )
        page = {
            "token": token,
            "role": str(claims.role),
            "name": claims.name,
            "sessionId": record.id,
            "title": record.title,
            "teacherName": record.teacher_name,
            "recording": record.recording_planned,
            "retentionDays": self.config.retention_days,
        }
        if record.state is SessionState.ENDED:
            # the lesson is over: what this invite may still see of it
            return self.render("ended.html", title=record.title, page=page)
        template = ROLE_TEMPLATES.get(claims.role)
        if record.kind is SessionKind.DEBRIEF:
            # a debrief room: its members watch one recording together
            page["recordingId"] = record.recording_id
            template = "debrief.html" if claims.role is Role.MEMBER else None
        if template is None:
            return self.error_page(
                403,
                "This page isn't available yet",
                f"Invites for the {claims.role} role can't be opened here.",
                ask,
            )
        return self.render(template, title=record.title, page=page)

    async def lesson_before_join(self, request: web.Request) -> web.Response:
        """``GET /api/lesson``: what a coach's or observer's join screen shows
        before joining (the invite's lesson, who is there, whether the
        classroom is live); each part only if the policy sends it to the
        invite's role live (presence, the classroom)."""
        reader, session_id = auth.reader(request, self.config.secret)
        if session_id is None or reader.role is None:
            raise Forbidden("an invite to one lesson is needed")
        role = str(reader.role)
        record = await self.store.get(session_id)
        live = self.deployment.live_summary(record.id)
        body: dict[str, Any] = {
            "sessionId": record.id,
            "title": record.title,
            "teacherName": record.teacher_name,
            "state": str(record.state),
        }
        if self.policy.receives(role, Item.PRESENCE):
            here = (live or {}).get("participants") or {}
            body["here"] = {str(r): int(n) for r, n in here.items()}
        if self.policy.receives(role, Item.CLASSROOM):
            body["classroomLive"] = bool((live or {}).get("classroom_tracks"))
        return json_response(body)

    async def review(self, request: web.Request) -> web.Response:
        """The review page of one recording; its script reads the recording
        with the invite in the address (or the lobby's admin token)."""
        page = {
            "recordingId": request.match_info["recording_id"],
            "retentionDays": self.config.retention_days,
        }
        return self.render("review.html", title="Review", page=page)

    async def check(self, request: web.Request) -> web.Response:
        """The pre-lesson check: camera, microphone, earpiece and the way to
        this server (its socket.io routes are signaling/routes/check.py)."""
        back = request.query.get("back", "")
        # only a page of this server (a path), never another site
        page = {"back": back if _LOCAL_PATH.fullmatch(back) else None}
        return self.render("check.html", title="Pre-lesson check", page=page)

    async def lessons(self, request: web.Request) -> web.Response:
        return self.render("lessons.html", title="Past lessons", page={})

    async def vendor(self, request: web.Request) -> web.StreamResponse:
        rel = VENDOR_FILES.get(request.match_info["name"])
        if rel is None:
            raise web.HTTPNotFound(text="not found")
        path = NODE_MODULES_DIR / rel
        if not path.is_file():
            logger.error("%s is missing: run `npm install` in web_client/", path)
            raise web.HTTPServiceUnavailable(
                text="web client libraries are not installed (run npm install in web_client/)"
            )
        kind = "text/css" if rel.endswith(".css") else "text/javascript"
        return web.FileResponse(
            path,
            headers={
                "Content-Type": f"{kind}; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
            },
        )


async def _manifest(request: web.Request) -> web.StreamResponse:
    """The teacher page's web app manifest, as the manifest's own type
    (installable on a tablet's home screen)."""
    return web.FileResponse(
        STATIC_DIR / "manifest.webmanifest",
        headers={"Content-Type": "application/manifest+json", "Cache-Control": "no-cache"},
    )


async def _favicon(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(
        STATIC_DIR / "favicon.svg",
        headers={"Content-Type": "image/svg+xml", "Cache-Control": "max-age=86400"},
    )


@web.middleware
async def _static_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    if request.path.startswith("/static/"):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-cache")
    return response


def setup_pages(
    app: web.Application,
    *,
    config: Config,
    store: SessionStore,
    deployment: Deployment,
    policy: AccessPolicy,
) -> None:
    """Add ``/``, ``/join``, ``/api/lesson``, ``/review/...``, ``/lessons``,
    ``/check``, ``/static/...`` and ``/vendor/...`` to ``app``."""
    pages = _Pages(config, store, deployment, policy)
    app.router.add_get("/", pages.lobby)
    app.router.add_get("/join", pages.join)
    app.router.add_get("/api/lesson", pages.lesson_before_join)
    app.router.add_get("/review/{recording_id}", pages.review)
    app.router.add_get("/lessons", pages.lessons)
    app.router.add_get("/check", pages.check)
    app.router.add_get("/vendor/{name}", pages.vendor)
    app.router.add_get("/favicon.ico", _favicon)
    # before the static directory: the manifest gets its own content type
    app.router.add_get("/static/manifest.webmanifest", _manifest)
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False, append_version=False)
    app.middlewares.append(_static_headers)
