"""Admin HTTP API: create and list sessions, mint invites, end sessions.

Every ``/api`` route needs ``Authorization: Bearer <admin token>``. Errors
are raised and answered by the one error middleware (``errors.py``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from aiohttp import web

from server.access.invites import invite_links, invite_url, name_and_ttl
from server.core.config import Config
from server.core.errors import InvalidMessage, RateLimited, SessionEnded
from server.core.ratelimit import TokenBucket
from server.core.roles import Role, SessionState
from server.core.tokens import INVITE_ROLES, issue_invite
from server.http import auth
from server.http.replies import json_response, read_json
from server.live.deployment import Deployment
from server.storage.sessions import SessionRecord, SessionSettings, SessionStore, parse_when

logger = logging.getLogger(__name__)


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

    def __init__(self, config: Config, store: SessionStore, deployment: Deployment) -> None:
        self.config = config
        self.store = store
        self.deployment = deployment
        self._creations = _PerTokenRate(config.limits.sessions_per_admin_token_per_minute)

    # -- edges ------------------------------------------------------------

    def _authorize(self, request: web.Request) -> str:
        return auth.admin(request, self.config.secret)

    async def _read_json(self, request: web.Request, *, required: bool) -> dict[str, Any]:
        return await read_json(request, self.config.limits.max_message_bytes, required=required)

    def _session_id(self, request: web.Request) -> str:
        return request.match_info["session_id"]

    def _invites(self, record: SessionRecord) -> dict[str, str]:
        return {} if record.state is SessionState.ENDED else invite_links(self.config, record)

    # -- handlers ---------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

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
        body = {"session": record.to_json(), "invites": self._invites(record)}
        return json_response(body, status=201)

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
            item = record.to_json()
            item["live"] = self.deployment.live_summary(record.id)
            sessions.append(item)
        return json_response({"sessions": sessions})

    async def get_session(self, request: web.Request) -> web.Response:
        self._authorize(request)
        record = await self.store.get(self._session_id(request))
        body = {
            "session": record.to_json(),
            "invites": self._invites(record),
            "live": self.deployment.live_summary(record.id),
        }
        return json_response(body)

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
        roles = [r.value for r in Role if r in INVITE_ROLES]
        if not isinstance(raw_role, str) or raw_role not in roles:
            raise InvalidMessage(f"role must be one of: {', '.join(roles)}")
        name, ttl_s = name_and_ttl(self.config, record, data)
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
        return json_response(body, status=201)

    async def end_session(self, request: web.Request) -> web.Response:
        self._authorize(request)
        record = await self.store.get(self._session_id(request))
        if record.state is not SessionState.ENDED:
            await self.deployment.end_session(record.id, "ended by an admin")
            record = await self.store.get(record.id)
            if record.state is not SessionState.ENDED:
                # not live anywhere (e.g. still scheduled): end it in the store
                record = await self.store.set_state(record.id, SessionState.ENDED, at=time.time())
            logger.info("admin API ended session %s", record.id)
        return json_response({"session": record.to_json()})


def setup_http_api(
    app: web.Application, *, config: Config, store: SessionStore, deployment: Deployment
) -> None:
    """Add ``/healthz`` and the ``/api/sessions`` routes to ``app``."""
    if not config.secret:
        raise ValueError("config.secret is required (use config.ensure_secret)")
    api = _AdminApi(config, store, deployment)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_post("/api/sessions", api.create_session)
    app.router.add_get("/api/sessions", api.list_sessions)
    app.router.add_get("/api/sessions/{session_id}", api.get_session)
    app.router.add_post("/api/sessions/{session_id}/invites", api.create_invite)
    app.router.add_post("/api/sessions/{session_id}/end", api.end_session)
