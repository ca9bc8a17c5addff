"""Invite and admin tokens: what a joining user or an admin script meets."""

from __future__ import annotations

import time

import jwt
import pytest

from server.core.errors import TokenExpired, Unauthorized
from server.core.roles import Role
from server.core.tokens import (
    MAX_TOKEN_CHARS,
    InviteClaims,
    issue_admin_token,
    issue_invite,
    verify_admin_token,
    verify_invite,
)

SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
OTHER_SECRET = "other-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


def test_invite_round_trips() -> None:
    now = 1_700_000_000.0
    token = issue_invite(SECRET, "abc123", Role.COACH, ttl_s=3600, name=" Ms Rivera ", now=now)
    claims = verify_invite(SECRET, token, now=now + 10)
    assert claims == InviteClaims(
        session_id="abc123",
        role=Role.COACH,
        name="Ms Rivera",
        expires_at=int(now) + 3600,
        invite_id=claims.invite_id,
    )
    assert claims.invite_id.startswith("i-")


def test_each_invite_has_its_own_stable_id() -> None:
    a = issue_invite(SECRET, "s1", Role.COACH, ttl_s=60)
    b = issue_invite(SECRET, "s1", Role.COACH, ttl_s=60)
    assert verify_invite(SECRET, a).invite_id == verify_invite(SECRET, a).invite_id
    assert verify_invite(SECRET, a).invite_id != verify_invite(SECRET, b).invite_id
    same = issue_invite(SECRET, "s1", Role.COACH, ttl_s=60, invite_id="i-fixed")
    assert verify_invite(SECRET, same).invite_id == "i-fixed"


def test_invite_minted_before_invite_ids_gets_a_derived_one() -> None:
    legacy = jwt.encode(
        {"iss": "sidecoach", "aud": "sidecoach", "typ": "invite", "iat": int(time.time()),
         "exp": int(time.time()) + 60, "sid": "s1", "role": "coach"},
        SECRET,
        algorithm="HS256",
    )
    claims = verify_invite(SECRET, legacy)
    assert claims.invite_id.startswith("h-")
    assert claims.invite_id == verify_invite(SECRET, legacy).invite_id


def test_invite_without_name_uses_real_clock() -> None:
    token = issue_invite(SECRET, "s1", Role.TEACHER, ttl_s=60)
    claims = verify_invite(SECRET, token)
    assert claims.role is Role.TEACHER
    assert claims.name is None
    assert claims.expires_at > time.time()


def test_expired_invite_is_refused_as_expired() -> None:
    token = issue_invite(SECRET, "s1", Role.OBSERVER, ttl_s=60, now=1000)
    with pytest.raises(TokenExpired):
        verify_invite(SECRET, token, now=1060)
    # expiry is still a kind of Unauthorized for callers that only catch that
    assert issubclass(TokenExpired, Unauthorized)


def test_invite_signed_with_other_secret_is_refused() -> None:
    token = issue_invite(OTHER_SECRET, "s1", Role.TEACHER, ttl_s=60)
    with pytest.raises(Unauthorized) as info:
        verify_invite(SECRET, token)
    assert not isinstance(info.value, TokenExpired)


def test_tampered_payload_is_refused() -> None:
    token = issue_invite(SECRET, "s1", Role.OBSERVER, ttl_s=60)
    # re-sign the same claims with the role raised to teacher, other key
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["role"] = "teacher"
    forged = jwt.encode(claims, OTHER_SECRET, algorithm="HS256")
    header, _, signature = token.split(".")
    spliced = ".".join([header, forged.split(".")[1], signature])
    for bad in (forged, spliced):
        with pytest.raises(Unauthorized):
            verify_invite(SECRET, bad)


def test_unsigned_token_is_refused() -> None:
    claims = jwt.decode(
        issue_invite(SECRET, "s1", Role.COACH, ttl_s=60), options={"verify_signature": False}
    )
    unsigned = jwt.encode(claims, "", algorithm="none")
    with pytest.raises(Unauthorized):
        verify_invite(SECRET, unsigned)


@pytest.mark.parametrize("garbage", ["", "not-a-token", "a.b.c", "x" * 100])
def test_malformed_tokens_are_refused(garbage: str) -> None:
    with pytest.raises(Unauthorized):
        verify_invite(SECRET, garbage)
    with pytest.raises(Unauthorized):
        verify_admin_token(SECRET, garbage)


def test_invite_is_not_an_admin_token_and_vice_versa() -> None:
    invite = issue_invite(SECRET, "s1", Role.TEACHER, ttl_s=60)
    admin = issue_admin_token(SECRET, ttl_s=60)
    verify_admin_token(SECRET, admin)
    with pytest.raises(Unauthorized):
        verify_admin_token(SECRET, invite)
    with pytest.raises(Unauthorized):
        verify_invite(SECRET, admin)


def test_admin_token_expires() -> None:
    admin = issue_admin_token(SECRET, ttl_s=60, now=1000)
    verify_admin_token(SECRET, admin, now=1059)
    with pytest.raises(TokenExpired):
        verify_admin_token(SECRET, admin, now=1060)


def test_token_from_another_issuer_is_refused() -> None:
    now = int(time.time())
    foreign = jwt.encode(
        {"iss": "elsewhere", "aud": "sidecoach", "typ": "admin", "iat": now, "exp": now + 60},
        SECRET,
        algorithm="HS256",
    )
    with pytest.raises(Unauthorized):
        verify_admin_token(SECRET, foreign)


def test_oversized_token_is_refused() -> None:
    token = issue_invite(SECRET, "s1", Role.COACH, ttl_s=60, name="n" * 80)
    assert len(token) < MAX_TOKEN_CHARS
    with pytest.raises(Unauthorized, match="too long"):
        verify_invite(SECRET, token + "A" * MAX_TOKEN_CHARS)


def test_short_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        issue_admin_token("short", ttl_s=60)
