"""WHIP ingest and WHEP egress (RFC 9725 and its WHEP sibling): media over
plain HTTP for clients no one here wrote (OBS, hardware encoders, players).

* ``POST /whip/{lesson}`` with a camera token and an SDP offer: the device
  joins the lesson as a participant of role ``camera`` (it publishes the
  classroom's camera and room mic, receives nothing) and gets ``201`` with
  the SDP answer, a ``Location`` for its resource, an ``ETag`` for its ICE
  session and a ``Link`` per ICE server (with its TURN credentials).
* ``POST /whep/{lesson}`` with an observer invite: a receive-only view of
  the classroom, with an observer's policy (never a whisper).
* On the resource: ``PATCH`` trickles ICE candidates (``204``; an ICE
  restart is ``422``: aiortc cannot restart ICE), ``DELETE`` leaves (``200``;
  the resource is gone after it: ``404``).
* CORS for browser clients on every answer, ``OPTIONS`` preflights.

The media path is the pages' one: the participant's ``Peer`` (answering
instead of offering) and the session's Router, Recorder and policy.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from server.access.invites import name_and_ttl
from server.access.policy import AccessPolicy, Action
from server.core.config import Config
from server.core.errors import (
    Forbidden,
    IceRestartUnsupported,
    InvalidMessage,
    LimitReached,
    MessageTooLarge,
    MethodNotAllowed,
    NotFound,
    PreconditionFailed,
    SessionEnded,
    TokenRevoked,
    UnacceptableOffer,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    WrongKindOfToken,
    WrongSession,
)
from server.core.roles import Role, SessionState
from server.core.tokens import (
    TYP_CAMERA,
    TYP_INVITE,
    issue_camera_token,
    new_camera_token_id,
    token_kind,
    verify_camera_token,
    verify_invite,
)
from server.core.turn import Credentialed, ice_servers_for
from server.http import auth
from server.http.replies import json_response, read_json
from server.live.deployment import Deployment
from server.live.manager import SessionManager
from server.live.offers import ClientOffer
from server.live.session import Participant, Session
from server.media.offer_sdp import offer_shape
from server.storage.lessons import SqlSessionStore

logger = logging.getLogger(__name__)

SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"
#: how a WHEP viewer is shown when its invite carries no name
WHEP_VIEWER_NAME = "Viewer (WHEP)"
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Location, ETag, Link, Accept-Patch, Accept-Post",
}
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Max-Age": "86400",
}
ENDPOINT_METHODS = "POST, OPTIONS"
RESOURCE_METHODS = "PATCH, DELETE, OPTIONS"


@dataclass
class Resource:
    """One WHIP publisher or WHEP viewer: a participant of a session."""

    id: str
    kind: str  # "whip" or "whep"
    session: Session
    participant_id: str

    @property
    def participant(self) -> Participant | None:
        return self.session.participants.get(self.participant_id)

    @property
    def etag(self) -> str:
        participant = self.participant
        return f'"{participant.peer.ice_ufrag}"' if participant is not None else '""'


def link_headers(servers: list[dict[str, Any]]) -> list[str]:
    """RFC 9725 section 4.4: one ``Link`` per ICE server URL."""
    links = []
    for server in servers:
        urls = server["urls"] if isinstance(server["urls"], list) else [server["urls"]]
        for url in urls:
            link = f'<{url}>; rel="ice-server"'
            if "username" in server and "credential" in server:
                link += (
                    f'; username="{server["username"]}"; credential="{server["credential"]}"'
                    '; credential-type="password"'
                )
            links.append(link)
    return links


def _require_type(request: web.Request, expected: str) -> None:
    if request.content_type != expected:
        got = request.headers.get("Content-Type", "none")
        raise UnsupportedMediaType(f"the body must be {expected} (got {got})")


async def _read_text(request: web.Request, limit: int) -> str:
    if request.content_length is not None and request.content_length > limit:
        raise MessageTooLarge(f"the body exceeds {limit} bytes")
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise MessageTooLarge(f"the body exceeds {limit} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidMessage("the body is not UTF-8 text") from None


def _check_offer(sdp: str, *, sends: bool) -> None:
    """Refuse an offer before anything is made for it: 400 if it is not SDP,
    422 if it is SDP this endpoint cannot take."""
    shape = offer_shape(sdp)
    if shape is None or not shape.media:
        raise InvalidMessage("the body is not an SDP offer with audio or video")
    if not shape.has_ice or not shape.has_fingerprint:
        raise UnacceptableOffer("the offer lacks ICE credentials or a DTLS fingerprint")
    if sends and not shape.sends():
        raise UnacceptableOffer("the offer sends no audio or video to publish")
    if not sends and not shape.receives():
        raise UnacceptableOffer("the offer receives no audio or video")


class WhipEndpoints:
    """The handlers, and this node's resources (they live with their
    participants: a resource whose participant left is gone)."""

    def __init__(
        self,
        config: Config,
        store: SqlSessionStore,
        manager: SessionManager,
        deployment: Deployment,
    ) -> None:
        self.config = config
        self.store = store
        self.manager = manager
        self.deployment = deployment
        self.resources: dict[str, Resource] = {}

    # -- who is asking ------------------------------------------------------

    def _wrong_kind(self, token: str, wanted: str, exc: Unauthorized) -> Exception:
        kind = token_kind(self.config.secret, token)
        if kind is not None and kind != wanted:
            what = "a camera token" if wanted == TYP_CAMERA else "an observer invite"
            return WrongKindOfToken(f"this is a token of kind {kind}: this endpoint needs {what}")
        return exc

    async def _camera(self, request: web.Request, session_id: str) -> tuple[Credentialed, str]:
        token = auth.bearer(request, query=False)
        try:
            claims = verify_camera_token(self.config.secret, token)
        except Unauthorized as exc:
            raise self._wrong_kind(token, TYP_CAMERA, exc) from None
        if claims.session_id != session_id:
            raise WrongSession("this camera token is for another lesson")
        record = await self.store.get(session_id)
        if claims.token_id in record.settings.revoked_camera_tokens:
            raise TokenRevoked("this camera token was revoked")
        return claims, f"{claims.name} (WHIP)" if claims.name else ""

    async def _viewer(self, request: web.Request, session_id: str) -> tuple[Credentialed, str]:
        token = auth.bearer(request, query=False)
        try:
            claims = verify_invite(self.config.secret, token)
        except Unauthorized as exc:
            raise self._wrong_kind(token, TYP_INVITE, exc) from None
        if claims.session_id != session_id:
            raise WrongSession("this invite is for another lesson")
        if claims.role != Role.OBSERVER or claims.login:
            raise Forbidden("WHEP gives an observer's view: use an observer invite link")
        return claims, claims.name or WHEP_VIEWER_NAME

    # -- the endpoints ----------------------------------------------------------

    async def whip(self, request: web.Request) -> web.StreamResponse:
        return await self._endpoint(request, "whip")

    async def whep(self, request: web.Request) -> web.StreamResponse:
        return await self._endpoint(request, "whep")

    async def _endpoint(self, request: web.Request, kind: str) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return _preflight(ENDPOINT_METHODS, accept_post=True)
        if request.method != "POST":
            raise MethodNotAllowed(f"{request.method} is not allowed here", ENDPOINT_METHODS)
        session_id = request.match_info["session_id"]
        publish = kind == "whip"
        who = self._camera if publish else self._viewer
        claims, name = await who(request, session_id)
        _require_type(request, SDP)
        sdp = await _read_text(request, self.config.limits.max_sdp_bytes)
        _check_offer(sdp, sends=publish)
        record = await self.store.get(session_id)
        if record.state is SessionState.ENDED:
            raise SessionEnded("this lesson has ended")
        if self.deployment.hosted_elsewhere(session_id):
            raise Unavailable("this lesson is live on another node: post to that node")
        self._forget_gone()
        limit = self.config.limits.max_whip_resources_per_session
        if self._count(session_id, replaced_by=claims.invite_id if publish else None) >= limit:
            raise LimitReached(f"at most {limit} WHIP/WHEP resources per lesson")
        session = await self.manager.open(session_id)
        role = Role.CAMERA if publish else Role.OBSERVER
        participant = await session.join(
            role,
            name or None,
            invite_id=claims.invite_id,
            offer=ClientOffer(sdp, receive=not publish),
        )
        resource = Resource(secrets.token_urlsafe(12), kind, session, participant.id)
        self.resources[resource.id] = resource
        logger.info("%s %s joined %s as %s", kind, resource.id, session_id, participant.id)
        headers = {"Location": f"/{kind}/{session_id}/{resource.id}", "ETag": resource.etag}
        answer = participant.peer.answer_sdp
        response = web.Response(status=201, text=answer, content_type=SDP, headers=headers)
        for link in link_headers(ice_servers_for(self.config, claims)):
            response.headers.add("Link", link)
        response.headers["Accept-Patch"] = SDPFRAG
        return response

    # -- the resource ---------------------------------------------------------

    async def resource(self, request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return _preflight(RESOURCE_METHODS, accept_post=False)
        kind = request.path.split("/", 2)[1]
        resource = self.resources.get(request.match_info["resource_id"])
        if (
            resource is None
            or resource.kind != kind
            or resource.session.id != request.match_info["session_id"]
            or resource.participant is None
        ):
            self._forget_gone()
            raise NotFound("no such WHIP/WHEP resource (it ended, or never was)")
        handlers: dict[str, Callable[[web.Request, Resource], Awaitable[web.StreamResponse]]]
        handlers = {"PATCH": self._patch, "DELETE": self._delete}
        handler = handlers.get(request.method)
        if handler is None:
            raise MethodNotAllowed(f"{request.method} is not allowed here", RESOURCE_METHODS)
        await self._authorize(request, resource)
        return await handler(request, resource)

    async def _authorize(self, request: web.Request, resource: Resource) -> None:
        """The resource's own token (another device's cannot end it)."""
        who = self._camera if resource.kind == "whip" else self._viewer
        claims, _ = await who(request, resource.session.id)
        participant = resource.participant
        if participant is None or participant.invite_id != claims.invite_id:
            raise Forbidden("this resource belongs to another token")

    async def _patch(self, request: web.Request, resource: Resource) -> web.StreamResponse:
        _require_type(request, SDPFRAG)
        frag = await _read_text(request, self.config.limits.max_sdp_bytes)
        participant = resource.participant
        assert participant is not None
        if_match = request.headers.get("If-Match")
        ufrags = [line[len("a=ice-ufrag:") :].strip() for line in _lines(frag, "a=ice-ufrag:")]
        if if_match == "*" or any(u != participant.peer.remote_ice_ufrag for u in ufrags):
            raise IceRestartUnsupported(
                "ICE restart is not supported (aiortc cannot restart ICE): "
                "DELETE this resource and POST a new offer"
            )
        if if_match is not None and if_match != resource.etag:
            raise PreconditionFailed("If-Match does not name this ICE session's ETag")
        candidates = [line[len("a=candidate:") :] for line in _lines(frag, "a=candidate:")]
        end = bool(_lines(frag, "a=end-of-candidates"))
        await participant.peer.add_candidates(candidates, end=end)
        return web.Response(status=204)

    async def _delete(self, request: web.Request, resource: Resource) -> web.StreamResponse:
        self.resources.pop(resource.id, None)
        await resource.session.leave(resource.participant_id, reason="left")
        logger.info("%s %s deleted", resource.kind, resource.id)
        return web.Response(status=200)

    async def remove_token(self, session_id: str, token_id: str) -> int:
        """Remove the devices publishing with a revoked camera token."""
        session = self.manager.get(session_id)
        if session is None:
            return 0
        gone = [
            p.id
            for p in session.participants.values()
            if p.role == Role.CAMERA and p.invite_id == token_id
        ]
        for pid in gone:
            await session.leave(pid, reason="revoked")
        self._forget_gone()
        return len(gone)

    def _count(self, session_id: str, *, replaced_by: str | None) -> int:
        """Resources in a lesson, but for the stream a device's new POST
        replaces (its own: one seat per camera token)."""
        return sum(
            1
            for r in self.resources.values()
            if r.session.id == session_id
            and (p := r.participant) is not None
            and (replaced_by is None or p.invite_id != replaced_by)
        )

    def _forget_gone(self) -> None:
        for rid in [r.id for r in self.resources.values() if r.participant is None]:
            del self.resources[rid]


def _lines(text: str, prefix: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith(prefix)]


def _preflight(methods: str, *, accept_post: bool) -> web.Response:
    headers = {**PREFLIGHT_HEADERS, "Access-Control-Allow-Methods": methods}
    if accept_post:
        headers["Accept-Post"] = SDP
    else:
        headers["Accept-Patch"] = SDPFRAG
    return web.Response(status=204, headers=headers)


async def _cors(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith(("/whip/", "/whep/")):
        for name, value in CORS_HEADERS.items():
            response.headers.setdefault(name, value)


class CameraTokens:
    """A lesson's camera tokens: its teacher (the token of their invite) or
    an admin mints one, or revokes one (the revocation is kept with the
    lesson, and its device is removed). ``Action.CAMERA_TOKENS`` decides."""

    def __init__(
        self,
        config: Config,
        store: SqlSessionStore,
        endpoints: WhipEndpoints,
        policy: AccessPolicy,
    ) -> None:
        self.config = config
        self.store = store
        self.endpoints = endpoints
        self.policy = policy
        self._lock = asyncio.Lock()

    def _authorize(self, request: web.Request) -> None:
        reader, session_id = auth.reader(request, self.config.secret)
        if session_id is not None and session_id != request.match_info["session_id"]:
            raise WrongSession("this invite is for another lesson")
        if not self.policy.may(reader, Action.CAMERA_TOKENS):
            raise Forbidden("only the lesson's teacher or an admin manages its camera tokens")

    async def mint(self, request: web.Request) -> web.Response:
        self._authorize(request)
        data = await read_json(request, self.config.limits.max_message_bytes, required=False)
        record = await self.store.get(request.match_info["session_id"])
        if record.state is SessionState.ENDED:
            raise SessionEnded(f"session {record.id} has ended")
        unknown = set(data) - {"name", "ttl_s"}
        if unknown:
            raise InvalidMessage(f"unknown fields: {', '.join(sorted(unknown))}")
        name, ttl_s = name_and_ttl(self.config, record, data)
        now = time.time()
        token_id = new_camera_token_id()
        token = issue_camera_token(
            self.config.secret, record.id, ttl_s=ttl_s, name=name, now=now, token_id=token_id
        )
        logger.info("admin API minted camera token %s for session %s", token_id, record.id)
        body = {
            "session_id": record.id,
            "token_id": token_id,
            "token": token,
            "whip_url": f"{self.config.base_url}/whip/{record.id}",
            "expires_at": int(now) + ttl_s,
        }
        return json_response(body, status=201)

    async def revoke(self, request: web.Request) -> web.Response:
        self._authorize(request)
        session_id, token_id = request.match_info["session_id"], request.match_info["token_id"]
        async with self._lock:
            record = await self.store.get(session_id)
            revoked = record.settings.revoked_camera_tokens
            if token_id not in revoked:
                settings = replace(record.settings, revoked_camera_tokens=(*revoked, token_id))
                await self.store.update_settings(session_id, settings)
        removed = await self.endpoints.remove_token(session_id, token_id)
        logger.info("admin API revoked camera token %s of session %s", token_id, session_id)
        return json_response({"revoked": token_id, "removed": removed})


def setup_whip(
    app: web.Application,
    *,
    config: Config,
    store: SqlSessionStore,
    manager: SessionManager,
    deployment: Deployment,
    policy: AccessPolicy,
) -> WhipEndpoints:
    endpoints = WhipEndpoints(config, store, manager, deployment)
    tokens = CameraTokens(config, store, endpoints, policy)
    app.router.add_post("/api/sessions/{session_id}/camera-tokens", tokens.mint)
    app.router.add_delete("/api/sessions/{session_id}/camera-tokens/{token_id}", tokens.revoke)
    app.router.add_route("*", "/whip/{session_id}", endpoints.whip)
    app.router.add_route("*", "/whep/{session_id}", endpoints.whep)
    app.router.add_route("*", "/whip/{session_id}/{resource_id}", endpoints.resource)
    app.router.add_route("*", "/whep/{session_id}/{resource_id}", endpoints.resource)
    app.on_response_prepare.append(_cors)
    return endpoints
