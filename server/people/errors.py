"""Errors of sign-in and people: each with its code and HTTP status (the
one error middleware answers them; docs/PROTOCOL.md lists every code)."""

from __future__ import annotations

from server.core.errors import Conflict, Forbidden, NotFound, RateLimited, Unauthorized


class SignInFailed(Unauthorized):
    """Wrong e-mail or password (never says which)."""

    code = "sign_in_failed"


class AccountLocked(RateLimited):
    """Too many wrong passwords in a row: locked for a while."""

    code = "account_locked"


class NotSignedIn(Unauthorized):
    code = "not_signed_in"


class AccountDisabled(Forbidden):
    code = "account_disabled"


class PasswordChangeRequired(Forbidden):
    """An admin set this password: choose a new one first."""

    code = "password_change_required"


class CsrfFailed(Forbidden):
    """A cookie-authenticated change without the page's CSRF token."""

    code = "csrf_failed"


class OidcFailed(Unauthorized):
    """The identity provider's answer was refused (forged, expired, replayed,
    for another client, or a domain the district has not allowed)."""

    code = "oidc_failed"


class PersonNotFound(NotFound):
    code = "person_not_found"


class NotInCaseload(Forbidden):
    """A coach scheduling with, or reading, a teacher outside their caseload."""

    code = "not_in_caseload"


class AlreadyExists(Conflict):
    code = "already_exists"
