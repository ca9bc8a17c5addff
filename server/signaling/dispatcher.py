"""The one dispatcher of socket.io messages.

Every message a client sends is ``[event, payload?]``. Before its route runs
it is rate-limited, size-checked, validated against its schema
(``schemas.py``) and, when the route names an ``Action``, checked against
the access policy (``policy.may``). A refusal is a reply
``{"ok": false, "error": {"code", "message"}}`` and changes nothing;
``dispatch`` never raises. The routes themselves live in ``routes/``, one
module per feature.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from server.access.policy import AccessPolicy, Action
from server.core.config import Limits
from server.core.errors import (
    Forbidden,
    InvalidMessage,
    MessageTooLarge,
    RateLimited,
    ReservedEvent,
    SidecoachError,
    Unauthorized,
    UnknownEvent,
)
from server.core.ratelimit import TokenBucket
from server.live.check import LineCheck
from server.live.session import Participant, Session
from server.ops.metrics import Metrics

logger = logging.getLogger(__name__)

#: event names socket.io keeps for the transport; a client may not send them
RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error"})

M = TypeVar("M", bound=BaseModel)
Reply = dict[str, Any]
Route = Callable[["Connection", Any], Awaitable[Reply]]


@dataclass
class Connection:
    """One client socket, and whom it joined as."""

    sid: str
    bucket: TokenBucket
    session: Session | None = None
    participant: Participant | None = None
    joining: bool = False
    #: the login session a signed-in person joined with ("" for invites)
    login: str = ""
    #: the pre-lesson check this socket runs (routes/check.py), if any
    check: LineCheck | None = None


def error_reply(exc: SidecoachError) -> Reply:
    return {"ok": False, "error": {"code": exc.code, "message": exc.message}}


def joined(conn: Connection) -> tuple[Session, Participant]:
    """The session and participant of a joined socket; refuses otherwise."""
    if conn.session is None or conn.participant is None:
        raise Unauthorized("join first")
    if conn.participant.id not in conn.session.participants:
        raise Forbidden("no longer in the session")
    return conn.session, conn.participant


class Dispatcher:
    def __init__(self, limits: Limits, policy: AccessPolicy, metrics: Metrics) -> None:
        self._limits = limits
        self._policy = policy
        self._metrics = metrics
        self._routes: dict[str, Route] = {}

    def add(
        self,
        event: str,
        model: type[M],
        handler: Callable[[Connection, M], Awaitable[Reply]],
        *,
        needs_join: bool = True,
        action: Action | None = None,
    ) -> None:
        """Route ``event``: its payload must match ``model``; unless
        ``needs_join`` is False the socket must have joined; with an
        ``action``, the participant must be allowed it by the policy."""
        if event in self._routes or event in RESERVED_EVENTS:
            raise ValueError(f"route {event!r} is taken")
        policy = self._policy

        async def on_event(conn: Connection, data: Any) -> Reply:
            try:
                message = model.model_validate({} if data is None else data)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "message"
                raise InvalidMessage(f"{event}: {where}: {first['msg']}") from None
            if needs_join and conn.participant is None:
                raise Unauthorized("join first")
            participant = conn.participant
            if (
                action is not None
                and participant is not None
                and not policy.may(participant.reader, action)
            ):
                raise Forbidden(f"a {participant.role} may not send {event}")
            return await handler(conn, message)

        self._routes[event] = on_event

    @property
    def events(self) -> frozenset[str]:
        return frozenset(self._routes)

    async def dispatch(self, conn: Connection | None, data: Any, size: int) -> Reply:
        """One message from a socket: ``[event, payload?]``. Always returns a
        reply; never raises."""
        event = data[0] if isinstance(data, list) and data and isinstance(data[0], str) else "?"
        metrics = self._metrics
        try:
            if conn is None:
                raise Unauthorized("not connected")
            if not conn.bucket.allow():
                raise RateLimited("too many messages; slow down")
            if event == "?":
                raise InvalidMessage("a message is [event name, payload]")
            if event in RESERVED_EVENTS:
                raise ReservedEvent(f"{event!r} is reserved")
            if len(data) > 2:
                raise InvalidMessage(f"{event[:40]}: one payload expected, got {len(data) - 1}")
            route = self._routes.get(event)
            if route is None:
                raise UnknownEvent(f"unknown event {event[:40]!r}")
            limit = self._limits.max_message_bytes
            if size > limit:
                raise MessageTooLarge(f"message of {size} bytes exceeds {limit}")
            reply = {"ok": True, **await route(conn, data[1] if len(data) > 1 else None)}
            metrics.signaling_messages.labels("ok").inc()
            metrics.signaling_events.labels(event).inc()
            return reply
        except SidecoachError as exc:
            metrics.signaling_messages.labels(exc.code).inc()
            if not isinstance(exc, RateLimited) and logger.isEnabledFor(logging.DEBUG):
                sid = conn.sid if conn is not None else "?"
                logger.debug("%s: refused %.40s: %s (%s)", sid, event, exc.message, exc.code)
            return error_reply(exc)
        except Exception:
            metrics.signaling_messages.labels("internal").inc()
            sid = conn.sid if conn is not None else "?"
            logger.exception("%s: error handling %.40s", sid, event)
            return error_reply(SidecoachError("internal error"))
