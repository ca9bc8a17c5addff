"""Root of every Sidecoach error; each carries a stable code for clients.

Packages raise these; only the signaling and HTTP edges turn them into
client-visible error replies.
"""

from __future__ import annotations


class SidecoachError(Exception):
    """Base class. ``code`` is the machine-readable error code sent to clients."""

    code = "internal"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class InvalidMessage(SidecoachError):
    code = "invalid_message"


class MessageTooLarge(SidecoachError):
    code = "message_too_large"


class Unauthorized(SidecoachError):
    code = "unauthorized"


class TokenExpired(Unauthorized):
    code = "token_expired"


class Forbidden(SidecoachError):
    code = "forbidden"


class NotFound(SidecoachError):
    code = "not_found"


class SessionNotFound(NotFound):
    code = "session_not_found"


class SessionEnded(SidecoachError):
    code = "session_ended"


class RateLimited(SidecoachError):
    code = "rate_limited"


class NegotiationFailed(SidecoachError):
    code = "negotiation_failed"


class LimitReached(SidecoachError):
    code = "limit_reached"


class ConfigError(SidecoachError, ValueError):
    """A setting has a bad value; the message names the variable (and flag).
    Raised at start-up only, never sent to a client."""

    code = "config_error"
