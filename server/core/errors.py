"""Root of every Sidecoach error. Each class carries its stable ``code``
(what clients get) and its HTTP ``status``; the HTTP edge's one middleware
(``server/http/errors.py``) and the signaling dispatcher turn them into
replies, and nothing else does. Every code a client can receive is listed in
``docs/PROTOCOL.md`` (a test checks it).
"""

from __future__ import annotations


class SidecoachError(Exception):
    """Base class. ``code`` is the machine-readable error code sent to
    clients; ``status`` the HTTP status of a refusal with it."""

    code = "internal"
    status = 500

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class InvalidMessage(SidecoachError):
    code = "invalid_message"
    status = 400


class ReservedEvent(InvalidMessage):
    code = "reserved_event"


class UnknownEvent(InvalidMessage):
    code = "unknown_event"


class MessageTooLarge(SidecoachError):
    code = "message_too_large"
    status = 413


class UnsupportedMediaType(SidecoachError):
    """A body of a content type the endpoint does not take."""

    code = "unsupported_media_type"
    status = 415


class MethodNotAllowed(SidecoachError):
    """A method the resource does not support; ``allow`` lists those it does."""

    code = "method_not_allowed"
    status = 405

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.allow = allow


class UnacceptableOffer(SidecoachError):
    """A well-formed SDP offer the server cannot take (nothing it may
    publish or receive, no ICE credentials, no DTLS fingerprint)."""

    code = "unacceptable_offer"
    status = 422


class IceRestartUnsupported(UnacceptableOffer):
    """A WHIP/WHEP client asked for an ICE restart (aiortc cannot restart ICE)."""

    code = "ice_restart_unsupported"


class PreconditionFailed(SidecoachError):
    """An ``If-Match`` that does not name the resource's current ETag."""

    code = "precondition_failed"
    status = 412


class Unauthorized(SidecoachError):
    code = "unauthorized"
    status = 401


class TokenExpired(Unauthorized):
    code = "token_expired"


class Forbidden(SidecoachError):
    code = "forbidden"
    status = 403


class TokenRevoked(Forbidden):
    """A camera token its lesson's teacher or an admin revoked."""

    code = "token_revoked"


class WrongKindOfToken(Forbidden):
    """A valid token of another kind (an invite used where a camera token
    is needed, or the reverse)."""

    code = "wrong_token_kind"


class WrongSession(Forbidden):
    """An invite used for another session than the page means."""

    code = "wrong_session"


class NotFound(SidecoachError):
    code = "not_found"
    status = 404


class SessionNotFound(NotFound):
    code = "session_not_found"


class Conflict(SidecoachError):
    """The request does not fit the current state of what it is about."""

    code = "conflict"
    status = 409


class SessionEnded(Conflict):
    code = "session_ended"


class InvalidState(Conflict):
    """A session state change its lifecycle does not allow."""

    code = "invalid_state"


class AlreadyJoined(Conflict):
    code = "already_joined"


class NotJoined(Conflict):
    """A participant that is no longer in the session."""

    code = "not_joined"


class Disconnected(Conflict):
    """The client's connection closed while its request was handled."""

    code = "disconnected"


class RateLimited(SidecoachError):
    code = "rate_limited"
    status = 429


class LimitReached(SidecoachError):
    """A named limit is reached (a full session, queue or list)."""

    code = "limit_reached"
    status = 429


class NegotiationFailed(SidecoachError):
    code = "negotiation_failed"
    status = 409


class StaleAnswer(NegotiationFailed):
    """An SDP answer to an offer that is no longer open."""

    code = "stale_answer"


class Unavailable(SidecoachError):
    """Something the server needs is not there right now: try again."""

    code = "unavailable"
    status = 503


class StoreClosed(Unavailable):
    code = "store_closed"


class ConfigError(SidecoachError, ValueError):
    """A setting has a bad value; the message names the variable (and flag).
    Raised at start-up only, never sent to a client."""

    code = "config_error"
