"""How two nodes prove to each other that they belong to one deployment
before a link carries anything: a challenge in both directions, keyed by
the deployment secret (a key derived from ``SIDECOACH_SECRET``).

Node A opens ``GET /cluster/link`` on the URL it has for node B, sending
no credential, only who it is and a fresh nonce ``na`` (headers). B
answers first, on the new WebSocket: ``{"node": "B", "nonce": nb,
"proof": HMAC(key, server|B|A|na|nb)}``. A checks that the answer comes
from the node it meant to reach (``node`` is B) and that the proof holds:
only a node that knows the secret can make it, for this very ``na``. Only
then does A send its token: a JWT (HS256, the derived key) whose audience
is B's node id, issued by A, bound to B's nonce ``nb`` and valid for
``TOKEN_TTL_S`` seconds. B accepts a token only if it is addressed to B,
carries the nonce B made for this connection, and has not expired, and
says ``{"ok": true}``.

So a URL that someone else wrote into Redis gets no credential from a
node (it cannot prove the secret), and a token seen by anyone is good for
nothing else: not for another node (its audience), not for another
connection (its nonce), not for long (its expiry).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from typing import Any

import aiohttp
import jwt
from aiohttp import web

from server.cluster.errors import LinkRefused
from server.cluster.signing import derive_key

LINK_PATH = "/cluster/link"
NODE_HEADER = "X-Sidecoach-Node"
NONCE_HEADER = "X-Sidecoach-Nonce"
TOKEN_TYP = "node-link"
#: a link token is good for this long (and for one connection only)
TOKEN_TTL_S = 10
#: each side answers the other's step of the handshake within this
STEP_TIMEOUT_S = 5.0
#: a node id as it may appear in a header
_NODE_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
_NONCE = re.compile(r"^[0-9a-f]{32}$")
_MAX_STEP_BYTES = 4096


class LinkKeys:
    """The deployment's key for node links (never the secret itself)."""

    def __init__(self, secret: str) -> None:
        self._key = derive_key(secret, "node-links/v1")

    def proof(self, server: str, client: str, client_nonce: str, server_nonce: str) -> str:
        text = f"server|{server}|{client}|{client_nonce}|{server_nonce}"
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def token(self, client: str, server: str, server_nonce: str) -> str:
        now = int(time.time())
        claims = {
            "typ": TOKEN_TYP,
            "iss": client,
            "aud": server,
            "nonce": server_nonce,
            "iat": now,
            "exp": now + TOKEN_TTL_S,
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def check_token(self, token: str, *, me: str, client: str, nonce: str) -> None:
        """Raises LinkRefused unless ``token`` is ``client``'s, for this
        node, for this connection, and not expired."""
        try:
            claims = jwt.decode(
                token[:_MAX_STEP_BYTES],
                self._key,
                algorithms=["HS256"],
                audience=me,
                issuer=client,
                options={"require": ["exp", "iat", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise LinkRefused(f"not a link token for this node ({exc})") from None
        if claims.get("typ") != TOKEN_TYP or not hmac.compare_digest(
            str(claims.get("nonce", "")), nonce
        ):
            raise LinkRefused("a link token made for another connection")


class Abandoned(LinkRefused):
    """The other side closed during the handshake (e.g. a ``cluster check``
    probe, which stops once the node proved itself)."""


async def _step(ws: Any) -> dict[str, Any]:
    """The other side's next handshake message (a small JSON object)."""
    msg = await ws.receive(timeout=STEP_TIMEOUT_S)
    closing = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)
    if msg.type in closing:
        raise Abandoned("the other side closed during the handshake")
    if msg.type != aiohttp.WSMsgType.TEXT or len(msg.data) > _MAX_STEP_BYTES:
        raise LinkRefused("the handshake was not completed")
    try:
        data = json.loads(msg.data)
    except ValueError:
        raise LinkRefused("the handshake was not completed") from None
    if not isinstance(data, dict):
        raise LinkRefused("the handshake was not completed")
    return data


async def connect(
    http: aiohttp.ClientSession,
    url: str,
    keys: LinkKeys,
    me: str,
    expect: str | None,
    *,
    heartbeat: float,
    max_msg_size: int,
    probe: bool = False,
) -> tuple[Any, str]:
    """Open a link to the node at ``url`` (``expect``: the node id it must
    prove, None for any node of the deployment): (the WebSocket, the node
    id it proved). ``probe``: stop once it proved itself (the WebSocket is
    closed). Raises LinkRefused, or aiohttp/OS errors if it cannot be reached."""
    nonce = secrets.token_hex(16)
    ws = await http.ws_connect(
        url + LINK_PATH,
        headers={NODE_HEADER: me, NONCE_HEADER: nonce},
        heartbeat=heartbeat,
        max_msg_size=max_msg_size,
    )
    try:
        hello = await _step(ws)
        node, theirs = str(hello.get("node", "")), str(hello.get("nonce", ""))
        proof = keys.proof(node, me, nonce, theirs)
        if not hmac.compare_digest(str(hello.get("proof", "")), proof) or not _NONCE.match(theirs):
            raise LinkRefused(f"{url} did not prove it is a node of this deployment")
        if expect is not None and node != expect:
            raise LinkRefused(f"{url} is node {node!r}, not {expect!r}")
        if probe:
            await ws.close()
            return ws, node
        await ws.send_str(json.dumps({"token": keys.token(me, node, theirs)}))
        if (await _step(ws)).get("ok") is not True:
            raise LinkRefused(f"node {node} refused this node's link token")
        return ws, node
    except BaseException:
        await ws.close()
        raise


async def accept(
    request: web.Request, keys: LinkKeys, me: str, *, heartbeat: float, max_msg_size: int
) -> tuple[web.WebSocketResponse, str | LinkRefused]:
    """Another node opens a link to this one: (the WebSocket, its node id),
    or (the WebSocket, closed, and why it was refused). Raises
    HTTPBadRequest for a request that is no link at all."""
    peer = request.headers.get(NODE_HEADER, "")
    theirs = request.headers.get(NONCE_HEADER, "")
    if not _NODE_ID.match(peer) or not _NONCE.match(theirs):
        raise web.HTTPBadRequest(text="not a node link")
    ws = web.WebSocketResponse(heartbeat=heartbeat, max_msg_size=max_msg_size)
    await ws.prepare(request)
    try:
        nonce = secrets.token_hex(16)
        proof = keys.proof(me, peer, theirs, nonce)
        await ws.send_str(json.dumps({"node": me, "nonce": nonce, "proof": proof}))
        answer = await _step(ws)
        keys.check_token(str(answer.get("token", "")), me=me, client=peer, nonce=nonce)
        await ws.send_str(json.dumps({"ok": True}))
        return ws, peer
    except (LinkRefused, TimeoutError, ConnectionError, RuntimeError) as exc:
        await ws.close(code=4401, message=b"refused")
        why = (
            exc if isinstance(exc, LinkRefused) else LinkRefused("the handshake was not completed")
        )
        return ws, why
