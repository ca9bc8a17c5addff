"""Signed tokens: invites (one session, one role), admin tokens and camera
tokens (a device publishing into one lesson over WHIP).

HS256 JWTs with ``iss``/``aud`` "sidecoach" and a ``typ`` claim, so an invite
is never accepted as an admin or camera token and vice versa.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from server.core.errors import TokenExpired, Unauthorized
from server.core.roles import Role

logger = logging.getLogger(__name__)

ALGORITHM = "HS256"
ISSUER = "sidecoach"
AUDIENCE = "sidecoach"
TYP_INVITE = "invite"
TYP_ADMIN = "admin"
TYP_CAMERA = "camera"
#: tokens longer than this are refused before any parsing
MAX_TOKEN_CHARS = 4096
#: longest display name carried in an invite
MAX_NAME_CHARS = 80
#: HS256 keys shorter than this are refused (RFC 7518 section 3.2)
MIN_SECRET_BYTES = 32


#: roles an invite can carry (the camera role comes with a camera token only)
INVITE_ROLES = frozenset(r for r in Role if r is not Role.CAMERA)

#: characters of randomness in an invite id (``iid`` claim)
INVITE_ID_BYTES = 9


@dataclass(frozen=True)
class InviteClaims:
    session_id: str
    role: Role
    name: str | None
    expires_at: int  # unix seconds
    #: stable identity of this invite (one link = one person): who wrote a
    #: note, how many seats one link holds. Minted as the ``iid`` claim;
    #: tokens minted before it existed get one derived from their signature.
    invite_id: str = ""
    #: the debrief's owner: decides whether the debrief itself is recorded
    owner: bool = False
    #: a signed-in person's invite: their login session (its hash), which
    #: must still be alive for the invite to join (sign-out, disabling)
    login: str = ""


def new_invite_id() -> str:
    return "i-" + secrets.token_urlsafe(INVITE_ID_BYTES)


def _derived_invite_id(token: str) -> str:
    return "h-" + hashlib.sha256(token.encode()).hexdigest()[:16]


def _now(now: float | None) -> int:
    return int(time.time() if now is None else now)


def _check_secret(secret: str) -> None:
    # A configuration error, not a client error: fail loudly.
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"the token secret must be at least {MIN_SECRET_BYTES} bytes")


def _encode(secret: str, typ: str, ttl_s: int, now: float | None, **extra: Any) -> str:
    _check_secret(secret)
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    iat = _now(now)
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "typ": typ,
        "iat": iat,
        "exp": iat + ttl_s,
        **extra,
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def _decode(secret: str, token: str, typ: str, now: float | None) -> dict[str, Any]:
    _check_secret(secret)
    if not isinstance(token, str) or not token:
        raise Unauthorized("missing token")
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthorized("token too long")
    try:
        # Signature, issuer and audience are checked by PyJWT; expiry is checked
        # here against ``now`` so callers (and tests) control the clock.
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={
                "require": ["exp", "iat", "iss", "aud", "typ"],
                "verify_exp": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError as exc:
        logger.debug("token refused: %s", exc)
        raise Unauthorized("invalid token") from exc
    if claims.get("typ") != typ:
        raise Unauthorized(f"not a token of kind {typ}")
    exp = claims.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise Unauthorized("invalid token")
    if _now(now) >= exp:
        raise TokenExpired("token expired")
    return claims


def issue_invite(
    secret: str,
    session_id: str,
    role: Role,
    *,
    ttl_s: int,
    name: str | None = None,
    now: float | None = None,
    invite_id: str | None = None,
    owner: bool = False,
    login: str = "",
) -> str:
    """An invite to ``session_id`` as ``role``, valid for ``ttl_s`` seconds.
    Each call mints a new invite id unless ``invite_id`` is given."""
    role = Role(role)
    if role not in INVITE_ROLES:
        raise ValueError(f"an invite cannot carry the {role} role")
    if not session_id:
        raise ValueError("session_id is required")
    extra: dict[str, Any] = {
        "sid": session_id,
        "role": role.value,
        "iid": invite_id or new_invite_id(),
    }
    if owner:
        extra["own"] = True
    if login:
        extra["lgn"] = login
    if name is not None:
        name = name.strip()[:MAX_NAME_CHARS]
        if name:
            extra["name"] = name
    return _encode(secret, TYP_INVITE, ttl_s, now, **extra)


def verify_invite(secret: str, token: str, *, now: float | None = None) -> InviteClaims:
    """Claims of a valid invite; TokenExpired if expired, Unauthorized otherwise."""
    claims = _decode(secret, token, TYP_INVITE, now)
    session_id = claims.get("sid")
    raw_role = claims.get("role")
    name = claims.get("name")
    if not isinstance(session_id, str) or not session_id:
        raise Unauthorized("invalid token")
    if not isinstance(raw_role, str) or raw_role not in {r.value for r in INVITE_ROLES}:
        raise Unauthorized("invalid token")
    role = Role(raw_role)
    if name is not None and not isinstance(name, str):
        raise Unauthorized("invalid token")
    iid = claims.get("iid")
    if iid is None:
        iid = _derived_invite_id(token)
    elif not isinstance(iid, str) or not 1 <= len(iid) <= 64:
        raise Unauthorized("invalid token")
    return InviteClaims(
        session_id=session_id,
        role=role,
        name=name,
        expires_at=int(claims["exp"]),
        invite_id=iid,
        owner=claims.get("own") is True,
        login=str(claims.get("lgn") or "")[:64],
    )


def issue_admin_token(secret: str, *, ttl_s: int, now: float | None = None) -> str:
    """A token for the admin HTTP API, valid for ``ttl_s`` seconds."""
    return _encode(secret, TYP_ADMIN, ttl_s, now)


def verify_admin_token(secret: str, token: str, *, now: float | None = None) -> None:
    """Return if ``token`` is a valid admin token; raise Unauthorized/TokenExpired."""
    _decode(secret, token, TYP_ADMIN, now)


@dataclass(frozen=True)
class CameraClaims:
    """A camera token: a device may publish the classroom's camera and room
    mic into ``session_id`` (over WHIP), and nothing else."""

    session_id: str
    #: the token's id (``ctid``): what a revocation names, and the seat it holds
    token_id: str
    name: str | None
    expires_at: int  # unix seconds

    @property
    def invite_id(self) -> str:
        """Who this device is across reconnections (as an invite's id)."""
        return self.token_id


def new_camera_token_id() -> str:
    return "c-" + secrets.token_urlsafe(INVITE_ID_BYTES)


def issue_camera_token(
    secret: str,
    session_id: str,
    *,
    ttl_s: int,
    name: str | None = None,
    now: float | None = None,
    token_id: str | None = None,
) -> str:
    """A camera token for ``session_id``, valid for ``ttl_s`` seconds."""
    if not session_id:
        raise ValueError("session_id is required")
    extra: dict[str, Any] = {"sid": session_id, "ctid": token_id or new_camera_token_id()}
    if name is not None and name.strip():
        extra["name"] = name.strip()[:MAX_NAME_CHARS]
    return _encode(secret, TYP_CAMERA, ttl_s, now, **extra)


def token_kind(secret: str, token: str) -> str | None:
    """The kind (``typ``) of a token this server signed, expired or not;
    None if it is not one. Says why a valid token of the wrong kind is refused."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError:
        return None
    typ = claims.get("typ")
    return typ if isinstance(typ, str) else None


def verify_camera_token(secret: str, token: str, *, now: float | None = None) -> CameraClaims:
    """Claims of a valid camera token; TokenExpired if expired, Unauthorized otherwise."""
    claims = _decode(secret, token, TYP_CAMERA, now)
    session_id, token_id, name = claims.get("sid"), claims.get("ctid"), claims.get("name")
    if not isinstance(session_id, str) or not session_id:
        raise Unauthorized("invalid token")
    if not isinstance(token_id, str) or not 1 <= len(token_id) <= 64:
        raise Unauthorized("invalid token")
    if name is not None and not isinstance(name, str):
        raise Unauthorized("invalid token")
    return CameraClaims(session_id, token_id, name, int(claims["exp"]))
