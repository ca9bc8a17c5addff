"""ICE settings for one joining client: the configured STUN/TURN servers,
plus time-limited TURN credentials when a TURN secret is set.

The credentials follow the TURN REST scheme (draft-uberti-behave-turn-rest)
that coturn implements with ``use-auth-secret`` / ``static-auth-secret``:

    username = "<expiry, unix seconds>:<invite id>"
    password = base64(HMAC-SHA1(secret, username))

coturn recomputes the password from the username and refuses it after the
expiry, so the secret itself never leaves the server (it is never logged and
never sent to a page), and a credential lasts exactly as long as the invite
it was handed out for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, Protocol

from server.core.config import Config, IceServer


class Credentialed(Protocol):
    """What TURN credentials are made for: an invite or a camera token."""

    @property
    def expires_at(self) -> int: ...

    @property
    def invite_id(self) -> str: ...


def turn_rest_credential(secret: str, expires_at: int, user: str) -> tuple[str, str]:
    """(username, password) valid until ``expires_at`` (unix seconds)."""
    username = f"{int(expires_at)}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers_for(config: Config, claims: Credentialed) -> list[dict[str, Any]]:
    """The ``iceServers`` list a client joining with ``claims`` gets."""
    servers = list(config.ice_servers)
    if config.turn_secret and config.turn_urls:
        username, password = turn_rest_credential(
            config.turn_secret, claims.expires_at, claims.invite_id
        )
        servers.append(IceServer(urls=config.turn_urls, username=username, credential=password))
    return [s.to_client() for s in servers]


def ice_config_for(config: Config, claims: Credentialed) -> dict[str, Any]:
    """The ICE part of the join reply: ``iceServers`` and the
    ``iceTransportPolicy`` pages set on their RTCPeerConnection."""
    return {
        "iceServers": ice_servers_for(config, claims),
        "iceTransportPolicy": config.ice_transport_policy,
    }
