"""Server-side login sessions: the browser's cookie holds a random token,
the database its SHA-256 (a stolen database opens no session), the
person, a CSRF token for the pages' changes, and when it ends. Revocable
one by one (sign-out) or all of a person's at once (disabled)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from server.storage.database import Database
from server.storage.models import LoginSession, Person

#: bytes of randomness in a login token and a CSRF token
TOKEN_BYTES = 32


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Login:
    """A live login session (what a request signed in with)."""

    id_hash: str
    person_id: str
    csrf: str
    expires_at: float

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class Logins:
    def __init__(self, db: Database, *, ttl_s: float, idle_s: float) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self.idle_s = idle_s

    async def start(self, person_id: str) -> tuple[str, Login]:
        """A new session (always new: a token from before the sign-in is
        never reused, so a planted cookie is worthless): (cookie token, it)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = time.time()
        row = LoginSession(
            id_hash=digest(token),
            person_id=person_id,
            csrf=secrets.token_urlsafe(TOKEN_BYTES),
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.ttl_s,
        )
        async with self.db.session() as s, s.begin():
            s.add(row)
        return token, Login(row.id_hash, person_id, row.csrf, row.expires_at)

    async def find(self, token: str) -> Login | None:
        """The live session of a cookie token (None: unknown, ended, expired,
        idle too long, or its person disabled); touches it."""
        if not token or len(token) > 128:
            return None
        now = time.time()
        q = (
            select(LoginSession)
            .join(Person, Person.id == LoginSession.person_id)
            .where(
                LoginSession.id_hash == digest(token),
                LoginSession.revoked_at.is_(None),
                LoginSession.expires_at > now,
                LoginSession.last_seen_at > now - self.idle_s,
                Person.disabled_at.is_(None),
            )
        )
        async with self.db.session() as s, s.begin():
            row = (await s.execute(q)).scalar_one_or_none()
            if row is None:
                return None
            if now - row.last_seen_at > 60:  # one write a minute at most
                row.last_seen_at = now
            return Login(row.id_hash, row.person_id, row.csrf, row.expires_at)

    async def alive(self, id_hash: str) -> bool:
        now = time.time()
        q = (
            select(LoginSession.id_hash)
            .join(Person, Person.id == LoginSession.person_id)
            .where(
                LoginSession.id_hash == id_hash,
                LoginSession.revoked_at.is_(None),
                LoginSession.expires_at > now,
                Person.disabled_at.is_(None),
            )
        )
        async with self.db.session() as s:
            return (await s.execute(q)).first() is not None

    async def end(self, id_hash: str) -> None:
        async with self.db.session() as s, s.begin():
            await s.execute(
                update(LoginSession)
                .where(LoginSession.id_hash == id_hash)
                .values(revoked_at=time.time())
            )

    async def end_all(self, person_id: str) -> int:
        async with self.db.session() as s, s.begin():
            result = await s.execute(
                update(LoginSession)
                .where(LoginSession.person_id == person_id, LoginSession.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        return int(getattr(result, "rowcount", 0))

    async def sweep(self) -> None:
        """Forget sessions that ended more than a day ago."""
        cutoff = time.time() - 86400
        async with self.db.session() as s, s.begin():
            await s.execute(delete(LoginSession).where(LoginSession.expires_at < cutoff))
