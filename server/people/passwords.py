"""Local passwords: argon2id hashes (argon2-cffi), computed off the event
loop (a hash takes tens of milliseconds on purpose)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from server.core.errors import InvalidMessage

MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 256


def check_new_password(password: object) -> str:
    if (
        not isinstance(password, str)
        or not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS
    ):
        raise InvalidMessage(
            f"a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )
    return password


class Passwords:
    def __init__(self) -> None:
        self._hasher = PasswordHasher()
        #: compared against when the e-mail is unknown, so a wrong e-mail
        #: takes as long as a wrong password
        self._decoy = self._hasher.hash("decoy password, never valid")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, hashed: str | None, password: str) -> bool:
        def verify() -> bool:
            try:
                return self._hasher.verify(hashed or self._decoy, password) and hashed is not None
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        if len(password) > MAX_PASSWORD_CHARS:
            return False
        return await asyncio.to_thread(verify)
