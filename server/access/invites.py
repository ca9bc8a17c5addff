"""Invite links: who is invited to a session, in which role, for how long.
An invite is a signed token (``core/tokens.py``) in a ``/join`` link."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from server.core.config import Config
from server.core.errors import InvalidMessage
from server.core.roles import Role
from server.core.tokens import MAX_NAME_CHARS, issue_invite
from server.storage.sessions import SessionRecord

#: roles that get a link when a session is created or shown
INVITE_ROLES: tuple[Role, ...] = (Role.TEACHER, Role.COACH, Role.OBSERVER)


def invite_ttl_s(config: Config, session: SessionRecord, *, now: float | None = None) -> int:
    """Invites last ``limits.token_ttl_s``, counted from the scheduled start
    when that is in the future (so a link sent today works next month)."""
    now = time.time() if now is None else now
    ttl = config.limits.token_ttl_s
    if session.scheduled_for is not None and session.scheduled_for > now:
        ttl += int(session.scheduled_for - now)
    return ttl


def name_and_ttl(
    config: Config, session: SessionRecord, data: dict[str, Any]
) -> tuple[str | None, int]:
    """A token request's ``name`` and ``ttl_s`` (at most ``invite_ttl_s``),
    checked; the whole token lifetime if no ``ttl_s`` is asked."""
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME_CHARS):
        raise InvalidMessage(f"name must be a string of at most {MAX_NAME_CHARS} characters")
    max_ttl = invite_ttl_s(config, session)
    ttl_s = data.get("ttl_s", max_ttl)
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not 1 <= ttl_s <= max_ttl:
        raise InvalidMessage(f"ttl_s must be an integer from 1 to {max_ttl}")
    return name, ttl_s


def invite_url(config: Config, token: str) -> str:
    return f"{config.base_url}/join?{urlencode({'token': token})}"


def invite_links(config: Config, session: SessionRecord) -> dict[str, str]:
    """role -> join link for the teacher, a coach and an observer."""
    ttl = invite_ttl_s(config, session)
    links: dict[str, str] = {}
    for role in INVITE_ROLES:
        name = session.teacher_name if role is Role.TEACHER else None
        token = issue_invite(config.secret, session.id, role, ttl_s=ttl, name=name)
        links[role.value] = invite_url(config, token)
    return links
