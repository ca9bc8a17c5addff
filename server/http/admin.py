"""Admin HTTP API: create and list sessions, mint invites, end sessions.

Every ``/api`` route needs ``Authorization: Bearer <admin token>``. Errors are
JSON ``{"error": {"code", "message"}}`` with a matching HTTP status.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlencode

from aiohttp import web

from server.core.config import Config
from server.core.errors import (
    Forbidden,
    InvalidMessage,
    MessageTooLarge,
    NotFound,
    RateLimited,
    SessionEnded,
    SidecoachError,
    Unauthorized,
)
from server.core.ratelimit import TokenBucket
from server.core.roles import Role, SessionState
from server.core.tokens import MAX_NAME_CHARS, issue_invite, verify_admin_token
from server.ops.metrics import Metrics
from server.storage.sessions import SessionRecord, SessionSettings, SessionStore

logger = logging.getLogger(__name__)

#: roles that get a link when a session is created or shown
INVITE_ROLES: tuple[Role, ...] = (Role.TEACHER, Role.COACH, Role.OBSERVER)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SessionControl(Protocol):
    async def end_session(self, session_id: str) -> None:
        """Close the live session (if any) and mark it ended in the store."""
        ...

    def live_summary(self, session_id: str) -> dict[str, Any] | None:
        """Participants by role etc., or None if not live on this node."""
        ...


def session_to_json(record: SessionRecord) -> dict[str, Any]:
    """A SessionRecord as JSON; times are unix seconds (or null)."""
    return {
        "id": record.id,
        "title": record.title,
        "teacher_name": record.teacher_name,
        "state": record.state.value,
        "created_at": record.created_at,
        "scheduled_for": record.scheduled_for,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "settings": record.settings.to_json(),
        "kind": str(record.kind),
        "recording_id": record.recording_id,
        "recording_planned": record.recording_planned,
        "recording_decisions": [d.to_json() for d in record.recording_decisions],
    }


def invite_ttl_s(config: Config, session: SessionRecord, *, now: float | None = None) -> int:
    """Invites last ``limits.token_ttl_s``, counted from the scheduled start
    when that is in the future (so a link sent today works next month)."""
    now = time.time() if now is None else now
    ttl = config.limits.token_ttl_s
    if session.scheduled_for is not None and session.scheduled_for > now:
        ttl += int(session.scheduled_for - now)
    return ttl


def invite_url(config: Config, token: str) -> str:
    return f"{config.base_url}/join?{urlencode({'token': token})}"


def invite_links(config: Config, session: SessionRecord) -> dict[str, str]:
    """role -> join link for the teacher, a coach and an observer."""
    ttl = invite_ttl_s(config, session)
    links: dict[str, str] = {}
    for role in INVITE_ROLES:
        name = session.teacher_name if role is Role.TEACHER else None
        token = issue_invite(config.secret, session.id, role, ttl_s=ttl, name=name)
        links[role.value] = invite_url(config, token)
    return links


def parse_when(value: object) -> float | None:
    """ISO-8601 date-time (or null) -> unix seconds. Naive times are local time."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidMessage("scheduled_for must be an ISO-8601 date-time")
    try:
        return datetime.fromisoformat(value.strip()).timestamp()
    except ValueError as exc:
        raise InvalidMessage("scheduled_for must be an ISO-8601 date-time") from exc


def _status_for(exc: SidecoachError) -> int:
    if isinstance(exc, Unauthorized):
        return 401
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, MessageTooLarge):
        return 413
    if isinstance(exc, RateLimited):
        return 429
    if isinstance(exc, SessionEnded) or exc.code == "invalid_state":
        return 409
    if isinstance(exc, InvalidMessage):
        return 400
    return 500


def error_response(exc: SidecoachError) -> web.Response:
    status = _status_for(exc)
    headers = {"WWW-Authenticate": 'Bearer realm="sidecoach"'} if status == 401 else None
    body = {"error": {"code": exc.code, "message": exc.message}}
    return web.json_response(body, status=status, headers=headers)


def _json_errors(handler: Handler, metrics: Metrics) -> Handler:
    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except SidecoachError as exc:
            metrics.http_refusals.labels(exc.code).inc()
            if _status_for(exc) == 500:
                logger.exception("admin API %s %s failed", request.method, request.path)
            return error_response(exc)

    return wrapper


class _PerTokenRate:
    """A token bucket per admin token (kept by digest, never the token),
    at most ``MAX_TRACKED`` of them (the least recently used are dropped)."""

    MAX_TRACKED = 1024

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, token: str) -> bool:
        key = hashlib.sha256(token.encode()).hexdigest()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = TokenBucket(self._per_minute / 60.0, self._per_minute)
            while len(self._buckets) >= self.MAX_TRACKED:
                del self._buckets[next(iter(self._buckets))]
        self._buckets[key] = bucket
        return bucket.allow()


class _AdminApi:
    """Handlers; holds what they need instead of storing it on the app."""

    def __init__(self, config: Config, store: SessionStore, control: SessionControl) -> None:
        self.config = config
        self.store = store
        self.control = control
        self._creations = _PerTokenRate(config.limits.sessions_per_admin_token_per_minute)

    # -- edges ------------------------------------------------------------

    def _authorize(self, request: web.Request) -> str:
        """The caller's admin token (checked)."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("admin token required (Authorization: Bearer ...)")
        verify_admin_token(self.config.secret, token.strip())
        return token.strip()

    async def _read_json(self, request: web.Request, *, required: bool) -> dict[str, Any]:
        limit = self.config.limits.max_message_bytes
        if request.content_length is not None and request.content_length > limit:
            raise MessageTooLarge(f"request body exceeds {limit} bytes")
        body = bytearray()
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > limit:
                raise MessageTooLarge(f"request body exceeds {limit} bytes")
        if not body.strip():
            if required:
                raise InvalidMessage("a JSON object body is required")
            return {}
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise InvalidMessage("body is not valid JSON (or nested too deeply)") from None
        if not isinstance(data, dict):
            raise InvalidMessage("body must be a JSON object")
        return data

    def _session_id(self, request: web.Request) -> str:
        return request.match_info["session_id"]

    def _invites(self, record: SessionRecord) -> dict[str, str]:
        return {} if record.state is SessionState.ENDED else invite_links(self.config, record)

    # -- handlers ---------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def create_session(self, request: web.Request) -> web.Response:
        token = self._authorize(request)
        data = await self._read_json(request, required=True)
        if not self._creations.allow(token):
            limit = self.config.limits.sessions_per_admin_token_per_minute
            raise RateLimited(f"at most {limit} sessions per minute per admin token")
        unknown = set(data) - {"title", "teacher_name", "settings", "scheduled_for"}
        if unknown:
            raise InvalidMessage(f"unknown fields: {', '.join(sorted(unknown))}")
        title, teacher_name = data.get("title"), data.get("teacher_name")
        if not isinstance(title, str) or not isinstance(teacher_name, str):
            raise InvalidMessage("title and teacher_name are required strings")
        settings = SessionSettings.from_json(data.get("settings"))
        record = await self.store.create(
            title=title,
            teacher_name=teacher_name,
            settings=settings,
            scheduled_for=parse_when(data.get("scheduled_for")),
        )
        logger.info("admin API created session %s", record.id)
        body = {"session": session_to_json(record), "invites": self._invites(record)}
        return web.json_response(body, status=201)

    async def list_sessions(self, request: web.Request) -> web.Response:
        self._authorize(request)
        states: list[SessionState] | None = None
        raw = [s for v in request.query.getall("state", []) for s in v.split(",") if s]
        if raw:
            try:
                states = [SessionState(s.strip()) for s in raw]
            except ValueError as exc:
                allowed = ", ".join(s.value for s in SessionState)
                raise InvalidMessage(f"state must be one of: {allowed}") from exc
        sessions = []
        for record in await self.store.list(states):
            item = session_to_json(record)
            item["live"] = self.control.live_summary(record.id)
            sessions.append(item)
        return web.json_response({"sessions": sessions})

    async def get_session(self, request: web.Request) -> web.Response:
        self._authorize(request)
        record = await self.store.get(self._session_id(request))
        body = {
            "session": session_to_json(record),
            "invites": self._invites(record),
            "live": self.control.live_summary(record.id),
        }
        return web.json_response(body)

    async def create_invite(self, request: web.Request) -> web.Response:
        self._authorize(request)
        data = await self._read_json(request, required=False)
        record = await self.store.get(self._session_id(request))
        if record.state is SessionState.ENDED:
            raise SessionEnded(f"session {record.id} has ended")
        unknown = set(data) - {"role", "name", "ttl_s"}
        if unknown:
            raise InvalidMessage(f"unknown fields: {', '.join(sorted(unknown))}")
        raw_role = data.get("role", Role.COACH.value)
        if not isinstance(raw_role, str) or raw_role not in {r.value for r in Role}:
            raise InvalidMessage(f"role must be one of: {', '.join(r.value for r in Role)}")
        name = data.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME_CHARS):
            raise InvalidMessage(f"name must be a string of at most {MAX_NAME_CHARS} characters")
        max_ttl = invite_ttl_s(self.config, record)
        ttl_s = data.get("ttl_s", max_ttl)
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not 1 <= ttl_s <= max_ttl:
            raise InvalidMessage(f"ttl_s must be an integer from 1 to {max_ttl}")
        now = time.time()
        role = Role(raw_role)
        token = issue_invite(self.config.secret, record.id, role, ttl_s=ttl_s, name=name, now=now)
        logger.info("admin API minted a %s invite for session %s", role, record.id)
        body = {
            "session_id": record.id,
            "role": role.value,
            "url": invite_url(self.config, token),
            "token": token,
            "expires_at": int(now) + ttl_s,
        }
        return web.json_response(body, status=201)

    async def end_session(self, request: web.Request) -> web.Response:
        self._authorize(request)
        record = await self.store.get(self._session_id(request))
        if record.state is not SessionState.ENDED:
            await self.control.end_session(record.id)
            record = await self.store.get(record.id)
            if record.state is not SessionState.ENDED:
                # not live anywhere (e.g. still scheduled): end it in the store
                record = await self.store.set_state(record.id, SessionState.ENDED, at=time.time())
            logger.info("admin API ended session %s", record.id)
        return web.json_response({"session": session_to_json(record)})


def setup_http_api(
    app: web.Application,
    *,
    config: Config,
    store: SessionStore,
    control: SessionControl,
    metrics: Metrics | None = None,
) -> None:
    """Add ``/healthz`` and the ``/api/sessions`` routes to ``app``."""
    if not config.secret:
        raise ValueError("config.secret is required (use config.ensure_secret)")
    api = _AdminApi(config, store, control)
    m = metrics if metrics is not None else Metrics()
    app.router.add_get("/healthz", _json_errors(api.healthz, m))
    app.router.add_post("/api/sessions", _json_errors(api.create_session, m))
    app.router.add_get("/api/sessions", _json_errors(api.list_sessions, m))
    app.router.add_get("/api/sessions/{session_id}", _json_errors(api.get_session, m))
    app.router.add_post("/api/sessions/{session_id}/invites", _json_errors(api.create_invite, m))
    app.router.add_post("/api/sessions/{session_id}/end", _json_errors(api.end_session, m))
