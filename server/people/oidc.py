"""Sign-in with the district's OpenID Connect provider (Google Workspace,
Microsoft Entra ID, ClassLink, Clever...): the authorization code flow
with PKCE (authlib's S256 challenge), ``state`` and ``nonce`` checked, the
ID token's signature verified against the provider's JWKS and its claims
(``iss``, ``aud``, ``exp``, ``iat``, ``nonce``) checked (joserfc).

A sign-in under way is a row of ``oidc_states`` (the state's hash, the
nonce, the PKCE verifier, where to go next), deleted by its callback: a
replayed or forged ``state`` finds nothing. Any node may finish a sign-in
another node began. Tokens and codes are never logged.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete

from server.core.config import Config
from server.people.errors import OidcFailed
from server.people.logins import digest
from server.storage.database import Database
from server.storage.models import OidcState

logger = logging.getLogger(__name__)

#: signature algorithms accepted on an ID token (never "none" or HMAC)
ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
#: the provider must answer within this
HTTP_TIMEOUT_S = 10.0
#: largest provider answer read (discovery, JWKS, token)
MAX_PROVIDER_BYTES = 256 * 1024
#: the JWKS is fetched again (an unknown key id: the provider rotated) at
#: most this often
JWKS_REFRESH_S = 60.0
CALLBACK_PATH = "/auth/oidc/callback"


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in (from a verified ID token)."""

    issuer: str
    sub: str
    email: str
    email_verified: bool
    name: str


@dataclass
class _Provider:
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    keys: KeySet | None = None
    keys_at: float = 0.0


class OidcClient:
    """One provider, per app (its discovery document and keys are cached)."""

    def __init__(self, config: Config, db: Database) -> None:
        self.config = config
        self.db = db
        self.issuer = config.oidc_issuer.rstrip("/")
        self._provider: _Provider | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.issuer and self.config.oidc_client_id)

    @property
    def redirect_uri(self) -> str:
        return self.config.base_url + CALLBACK_PATH

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _get_json(self, method: str, url: str, **kw: Any) -> dict[str, Any]:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S))
        try:
            async with self._http.request(method, url, **kw) as r:
                body = await r.content.read(MAX_PROVIDER_BYTES + 1)
                if len(body) > MAX_PROVIDER_BYTES:
                    raise OidcFailed("the identity provider's answer is too large")
                if r.status != 200:
                    logger.warning("identity provider: %s %s answered %d", method, url, r.status)
                    raise OidcFailed(f"the identity provider refused ({r.status})")
                data = json.loads(body)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            logger.warning("identity provider: %s %s failed: %s", method, url, type(exc).__name__)
            raise OidcFailed("the identity provider did not answer") from None
        if not isinstance(data, dict):
            raise OidcFailed("the identity provider's answer is not an object")
        return data

    async def _discover(self) -> _Provider:
        if self._provider is None:
            doc = await self._get_json("GET", self.issuer + "/.well-known/openid-configuration")
            if str(doc.get("issuer", "")).rstrip("/") != self.issuer:
                raise OidcFailed("the provider's discovery document names another issuer")
            try:
                self._provider = _Provider(
                    str(doc["authorization_endpoint"]),
                    str(doc["token_endpoint"]),
                    str(doc["jwks_uri"]),
                )
            except KeyError as exc:
                raise OidcFailed(f"the provider's discovery document lacks {exc}") from None
        return self._provider

    async def _keys(self, provider: _Provider, *, refresh: bool = False) -> KeySet:
        stale = time.monotonic() - provider.keys_at > JWKS_REFRESH_S
        if provider.keys is None or (refresh and stale):
            jwks = await self._get_json("GET", provider.jwks_uri)
            try:
                provider.keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError):
                raise OidcFailed("the provider's key set could not be read") from None
            provider.keys_at = time.monotonic()
        return provider.keys

    # -- the flow ------------------------------------------------------------------

    async def begin(self, next_url: str) -> str:
        """Where to send the browser: the provider's authorization endpoint
        with a fresh state, nonce and PKCE challenge (kept for the callback)."""
        provider = await self._discover()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        row = OidcState(
            state_hash=digest(state),
            nonce=nonce,
            code_verifier=verifier,
            next_url=next_url,
            created_at=time.time(),
        )
        async with self.db.session() as s, s.begin():
            # sign-ins never finished are forgotten
            cutoff = time.time() - self.config.limits.oidc_state_ttl_s
            await s.execute(delete(OidcState).where(OidcState.created_at < cutoff))
            s.add(row)
        query = {
            "response_type": "code",
            "client_id": self.config.oidc_client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "openid email profile",
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        return f"{provider.authorization_endpoint}?{urlencode(query)}"

    async def _take_state(self, state: str) -> OidcState:
        """The sign-in a ``state`` began, removed (at most one caller gets it)."""
        cutoff = time.time() - self.config.limits.oidc_state_ttl_s
        async with self.db.session(writes=True) as s, s.begin():
            row = await s.get(OidcState, digest(state), with_for_update=True)
            if row is None:
                raise OidcFailed("unknown or already used sign-in (state)")
            result = await s.execute(
                delete(OidcState).where(OidcState.state_hash == row.state_hash)
            )
            if getattr(result, "rowcount", 1) != 1:
                raise OidcFailed("unknown or already used sign-in (state)")
        if row.created_at < cutoff:
            raise OidcFailed("the sign-in took too long; start again")
        return row

    async def finish(self, state: str, code: str) -> tuple[Identity, str]:
        """The verified identity of a callback, and where to go next."""
        if not state or not code or len(state) > 256 or len(code) > 2048:
            raise OidcFailed("the provider's answer lacks a state or code")
        pending = await self._take_state(state)
        provider = await self._discover()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": pending.code_verifier,
            "client_id": self.config.oidc_client_id,
        }
        headers = {}
        if self.config.oidc_client_secret:
            # client_secret_basic (RFC 6749 2.3.1: each part form-encoded)
            pair = f"{quote(self.config.oidc_client_id)}:{quote(self.config.oidc_client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        tokens = await self._get_json("POST", provider.token_endpoint, data=form, headers=headers)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise OidcFailed("the provider sent no ID token")
        claims = await self.verify_id_token(id_token, pending.nonce)
        return identity_of(self.issuer, claims), pending.next_url

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        provider = await self._discover()
        try:
            try:
                token = jwt.decode(id_token, await self._keys(provider), ID_TOKEN_ALGORITHMS)
            except JoseError as exc:
                if "key" not in str(exc).lower() and "kid" not in str(exc).lower():
                    raise
                keys = await self._keys(provider, refresh=True)
                token = jwt.decode(id_token, keys, ID_TOKEN_ALGORITHMS)
            registry = jwt.JWTClaimsRegistry(
                leeway=self.config.limits.oidc_leeway_s,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.config.oidc_client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            )
            registry.validate(token.claims)
        except (JoseError, ValueError, TypeError) as exc:
            # the token itself is never logged
            logger.warning("ID token refused: %s", type(exc).__name__)
            raise OidcFailed(f"the ID token was refused ({type(exc).__name__})") from None
        claims: dict[str, Any] = token.claims
        aud = claims.get("aud")
        if (
            isinstance(aud, list)
            and len(aud) > 1
            and claims.get("azp") != self.config.oidc_client_id
        ):
            raise OidcFailed("the ID token is for several clients and not authorized for this one")
        return claims


def identity_of(issuer: str, claims: dict[str, Any]) -> Identity:
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise OidcFailed("the provider sent no e-mail address (ask for the email scope)")
    name = claims.get("name") or claims.get("given_name") or email.partition("@")[0]
    return Identity(
        issuer=issuer,
        sub=str(claims["sub"]),
        email=email.strip().lower(),
        email_verified=claims.get("email_verified") is not False,
        name=str(name)[:120],
    )
