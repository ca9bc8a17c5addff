"""Sign-in with a real OpenID Connect provider on loopback (oidc-provider-mock),
and the ID token checks against forged, expired and misdirected tokens."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from server.core.config import Config
from server.http.login import PEOPLE_KEY
from server.people.errors import OidcFailed
from server.people.oidc import OidcClient, _Provider
from server.people.principal import PersonRole
from server.people.service import People
from testkit.oidc import CLIENT_ID, Provider, oidc_provider, provider_sign_in
from testkit.procs import free_port
from testkit.server import LiveServer, make_config, running_server

USERS = [
    {
        "sub": "google-123",
        "email": "lee@district.example.org",
        "email_verified": True,
        "name": "Ms Lee",
    },
    {
        "sub": "google-456",
        "email": "mallory@elsewhere.example",
        "email_verified": True,
        "name": "Mallory",
    },
    {
        "sub": "google-789",
        "email": "okafor@district.example.org",
        "email_verified": True,
        "name": "Mr Okafor",
    },
]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Provider]:
    with oidc_provider(tmp_path_factory.mktemp("oidc"), USERS) as p:
        yield p  # type: ignore[misc]


@pytest.fixture
async def server(provider: Provider, tmp_path: Path) -> AsyncIterator[LiveServer]:
    port = free_port()
    config = make_config(
        tmp_path,
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret="test-client-secret",
    )
    async with running_server(config) as s:
        people: People = s.app[PEOPLE_KEY]
        school = await people.directory.create_school("Lincoln Elementary")
        await people.directory.allow_domain("district.example.org", school)
        yield s


async def sign_in(
    server: LiveServer, http: aiohttp.ClientSession, sub: str
) -> aiohttp.ClientResponse:
    start = await http.get(server.url + "/auth/oidc/start?next=/home", allow_redirects=False)
    assert start.status == 303
    back = await provider_sign_in(http, start.headers["Location"], sub)
    assert back.startswith(server.url + "/auth/oidc/callback?")
    r = await http.get(back, allow_redirects=False)
    await r.read()
    return r


def jar() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def test_first_sign_in_makes_an_account_for_an_allowed_domain(server: LiveServer) -> None:
    people: People = server.app[PEOPLE_KEY]
    async with jar() as http:
        r = await sign_in(server, http, "google-123")
        assert r.status == 303 and r.headers["Location"] == "/home", await r.text()
        me = await (await http.get(server.url + "/api/me")).json()
        assert me["person"]["email"] == "lee@district.example.org"
        assert [x["role"] for x in me["person"]["roles"]] == [str(PersonRole.TEACHER)]
        # the second time, the same account (matched by issuer + sub)
        assert (await sign_in(server, http, "google-123")).status == 303
    assert len(await people.directory.people()) == 1
    created = await people.audit.query(action="account-created")
    assert created and created[0]["domain"] == "district.example.org"


async def test_a_domain_the_district_has_not_allowed_gets_no_account(server: LiveServer) -> None:
    people: People = server.app[PEOPLE_KEY]
    async with jar() as http:
        r = await sign_in(server, http, "google-456")
        assert r.status == 401 and "not open here" in await r.text()
        assert (await http.get(server.url + "/api/me")).status == 401
    assert await people.directory.people() == []
    refused = await people.audit.query(action="sign-up-refused")
    assert refused[0]["domain"] == "elsewhere.example"


async def test_an_admin_made_account_is_linked_at_the_first_sign_in(server: LiveServer) -> None:
    people: People = server.app[PEOPLE_KEY]
    pid = await people.directory.create_person("Mr Okafor", "okafor@district.example.org")
    async with jar() as http:
        assert (await sign_in(server, http, "google-789")).status == 303
        me = await (await http.get(server.url + "/api/me")).json()
    assert me["person"]["id"] == pid


async def test_a_replayed_or_forged_state_is_refused(server: LiveServer) -> None:
    async with jar() as http:
        start = await http.get(server.url + "/auth/oidc/start", allow_redirects=False)
        back = await provider_sign_in(http, start.headers["Location"], "google-123")
        first = await http.get(back, allow_redirects=False)
        assert first.status == 303
    async with jar() as attacker:
        replay = await attacker.get(back, allow_redirects=False)
        assert replay.status == 401 and "already used" in await replay.text()
        code = parse_qs(urlsplit(back).query)["code"][0]
        forged = await attacker.get(
            f"{server.url}/auth/oidc/callback?state=made-up&code={code}", allow_redirects=False
        )
        assert forged.status == 401
        assert (await attacker.get(server.url + "/api/me")).status == 401


# -- the ID token itself ----------------------------------------------------------------


ISSUER = "https://idp.example.org"


def signer() -> tuple[RSAKey, KeySet]:
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
    return key, KeySet.import_key_set(KeySet([key]).as_dict(private=False))


def client(keys: KeySet) -> OidcClient:
    config = Config(oidc_issuer=ISSUER, oidc_client_id="sidecoach")
    c = OidcClient(config, None)  # type: ignore[arg-type]
    c._provider = _Provider(
        "https://idp/a", "https://idp/t", "https://idp/j", keys, time.monotonic()
    )
    return c


def claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": "sidecoach",
        "sub": "u1",
        "iat": now,
        "exp": now + 300,
        "nonce": "n-1",
        "email": "a@district.example.org",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    ("over", "why"),
    [
        ({"aud": "another-client"}, "aud"),
        ({"iss": "https://evil.example"}, "iss"),
        ({"nonce": "n-2"}, "nonce"),
        ({"nonce": None}, "no nonce"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
        ({"aud": ["sidecoach", "other"]}, "several audiences, no azp"),
    ],
)
async def test_misdirected_or_expired_id_tokens_are_refused(
    over: dict[str, object], why: str
) -> None:
    key, public = signer()
    token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims(**over), key)
    with pytest.raises(OidcFailed):
        await client(public).verify_id_token(token, "n-1")


async def test_forged_id_tokens_are_refused() -> None:
    key, public = signer()
    good = jwt.encode({"alg": "RS256", "kid": "k1"}, claims(), key)
    assert (await client(public).verify_id_token(good, "n-1"))["sub"] == "u1"
    other, _ = signer()  # signed by someone else's key with the same kid
    forged = jwt.encode({"alg": "RS256", "kid": "k1"}, claims(sub="someone-else"), other)
    head, body, _sig = good.split(".")
    _, forged_body, forged_sig = forged.split(".")
    for token in (forged, f"{head}.{forged_body}.{_sig}", f"{head}.{body}.", good[:-4] + "AAAA"):
        with pytest.raises(OidcFailed):
            await client(public).verify_id_token(token, "n-1")
    # "none" and HMAC (the public key as a shared secret) are never accepted
    import json as _json

    none_head = (
        base64.urlsafe_b64encode(_json.dumps({"alg": "none"}).encode()).rstrip(b"=").decode()
    )
    with pytest.raises(OidcFailed):
        await client(public).verify_id_token(f"{none_head}.{body}.", "n-1")
