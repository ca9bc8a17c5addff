"""Signing in and out, and what an admin does to an account: the decisions
about accounts, each written to the audit log (who, what, from where; never
a password, token or cookie).

* a password sign-in: rate-limited per address, the account locked after
  ``login_failures_before_lockout`` wrong passwords in a row for
  ``login_lockout_s``; an admin-set password must be changed first;
* an OIDC sign-in: matched by issuer + ``sub``; a first sign-in links the
  account an admin made for that e-mail, or makes one, only for a domain
  the district allowed;
* disabling a person ends every one of their login sessions at once and
  tells the app (``on_revoked``), which closes their live sockets.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from server.core.config import Limits
from server.core.ratelimit import TokenBucket
from server.people.directory import Directory, clean_email, domain_of
from server.people.errors import (
    AccountDisabled,
    AccountLocked,
    OidcFailed,
    PasswordChangeRequired,
    SignInFailed,
)
from server.people.logins import Login, Logins
from server.people.oidc import Identity
from server.people.passwords import Passwords, check_new_password
from server.people.principal import PersonRole
from server.storage.audit import AuditLog

logger = logging.getLogger(__name__)

#: addresses whose sign-in rate is tracked at once (least recent dropped)
MAX_TRACKED_ADDRESSES = 4096
#: (person id, the login session's hash, or None for all of them)
Revoked = Callable[[str, str | None], Awaitable[None]]


class _PerAddress:
    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, address: str) -> bool:
        key = hashlib.sha256(address.encode()).hexdigest()[:16]
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = TokenBucket(self._per_minute / 60.0, self._per_minute)
            while len(self._buckets) >= MAX_TRACKED_ADDRESSES:
                del self._buckets[next(iter(self._buckets))]
        self._buckets[key] = bucket
        return bucket.allow()


class Accounts:
    def __init__(
        self,
        directory: Directory,
        logins: Logins,
        audit: AuditLog,
        limits: Limits,
    ) -> None:
        self.directory = directory
        self.logins = logins
        self.audit = audit
        self.limits = limits
        self.passwords = Passwords()
        self._rate = _PerAddress(limits.logins_per_minute_per_address)
        #: called with a person's id when their sessions were all ended
        self.on_revoked: Revoked | None = None

    async def _audit(self, action: str, **entry: Any) -> None:
        await self.audit.append({"action": action, **entry})

    def check_rate(self, address: str) -> None:
        if not self._rate.allow(address):
            raise AccountLocked(
                f"at most {self.limits.logins_per_minute_per_address} sign-ins a minute "
                "from one address: wait a minute"
            )

    # -- passwords -------------------------------------------------------------------

    async def sign_in_password(self, email: str, password: str, address: str) -> tuple[str, Login]:
        """(cookie token, login) for a right password; raises otherwise."""
        self.check_rate(address)
        try:
            person = await self.directory.by_email(clean_email(email))
        except Exception:
            person = None
        ok = await self.passwords.verify(person.password_hash if person else None, password)
        if person is None:
            await self._audit("sign-in-refused", reason="unknown e-mail", address=address)
            raise SignInFailed("wrong e-mail or password")
        if person.locked_until is not None and person.locked_until > time.time():
            await self._audit("sign-in-refused", person=person.id, reason="locked", address=address)
            minutes = max(1, round((person.locked_until - time.time()) / 60))
            raise AccountLocked(f"too many wrong passwords: try again in {minutes} min")
        if not ok:
            locked = await self.directory.record_failure(
                person.id,
                lock_after=self.limits.login_failures_before_lockout,
                lock_s=self.limits.login_lockout_s,
            )
            await self._audit(
                "sign-in-refused",
                person=person.id,
                address=address,
                reason="locked now" if locked else "wrong password",
            )
            if locked:
                raise AccountLocked("too many wrong passwords: the account is locked for a while")
            raise SignInFailed("wrong e-mail or password")
        if person.disabled_at is not None:
            await self._audit("sign-in-refused", person=person.id, reason="disabled")
            raise AccountDisabled("this account is disabled")
        await self.directory.record_success(person.id)
        token, login = await self.logins.start(person.id)
        await self._audit("sign-in", person=person.id, method="password", address=address)
        return token, login

    async def change_password(self, person_id: str, old: str, new: str) -> None:
        person = await self.directory.row(person_id)
        if not await self.passwords.verify(person.password_hash, old):
            await self._audit("password-change-refused", person=person_id)
            raise SignInFailed("the current password is wrong")
        check_new_password(new)
        if new == old:
            raise PasswordChangeRequired("choose a password other than the one an admin set")
        hashed = await self.passwords.hash(new)
        await self.directory.set_password_hash(person_id, hashed, must_change=False)
        await self._audit("password-changed", person=person_id)

    async def set_password(self, person_id: str, password: str, *, by: str) -> None:
        """An admin sets a password: it must be changed at the next sign-in."""
        hashed = await self.passwords.hash(check_new_password(password))
        await self.directory.set_password_hash(person_id, hashed, must_change=True)
        await self._audit("password-set", person=person_id, by=by)

    # -- OIDC ---------------------------------------------------------------------------

    async def sign_in_oidc(self, identity: Identity, address: str) -> tuple[str, Login]:
        person = await self.directory.by_oidc(identity.issuer, identity.sub)
        if person is None:
            person_id = await self._first_oidc_sign_in(identity, address)
            person = await self.directory.row(person_id)
        if person.disabled_at is not None:
            await self._audit("sign-in-refused", person=person.id, reason="disabled")
            raise AccountDisabled("this account is disabled")
        token, login = await self.logins.start(person.id)
        await self._audit("sign-in", person=person.id, method="oidc", address=address)
        return token, login

    async def _first_oidc_sign_in(self, identity: Identity, address: str) -> str:
        domain = domain_of(identity.email)
        allowed = await self.directory.allowed_domain(domain)
        if allowed is None or not identity.email_verified:
            why = "domain not allowed" if allowed is None else "e-mail not verified"
            await self._audit("sign-up-refused", domain=domain, reason=why, address=address)
            raise OidcFailed(
                f"accounts for {domain} are not open here: ask your district admin"
                if allowed is None
                else "the provider has not verified this e-mail address"
            )
        existing = await self.directory.by_email(identity.email)
        if existing is not None:
            if existing.oidc_sub is not None:
                # the same e-mail already belongs to another provider account
                await self._audit("sign-up-refused", person=existing.id, reason="other sub")
                raise OidcFailed("this e-mail is linked to another provider account")
            await self.directory.link_oidc(existing.id, identity.issuer, identity.sub)
            await self._audit("account-linked", person=existing.id, method="oidc")
            return existing.id
        person_id = await self.directory.create_person(
            identity.name, identity.email, oidc=(identity.issuer, identity.sub)
        )
        if allowed.school_id is not None:
            await self.directory.grant(person_id, PersonRole.TEACHER, allowed.school_id)
        await self._audit(
            "account-created",
            person=person_id,
            method="oidc",
            domain=domain,
            school=allowed.school_id,
        )
        return person_id

    # -- sessions -----------------------------------------------------------------------

    async def sign_out(self, login: Login) -> None:
        await self.logins.end(login.id_hash)
        await self._audit("sign-out", person=login.person_id)
        if self.on_revoked is not None:
            await self.on_revoked(login.person_id, login.id_hash)

    async def set_disabled(self, person_id: str, disabled: bool, *, by: str) -> None:
        await self.directory.set_disabled(person_id, disabled)
        ended = await self.logins.end_all(person_id) if disabled else 0
        await self._audit(
            "person-disabled" if disabled else "person-enabled",
            person=person_id,
            by=by,
            sessions_ended=ended,
        )
        if disabled and self.on_revoked is not None:
            await self.on_revoked(person_id, None)
