"""A person's iCalendar feed (RFC 5545): their lessons, at a secret URL
they can revoke (a new one replaces it). The database keeps only each
secret's SHA-256."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

from sqlalchemy import select, update

from server.people.logins import digest
from server.storage.database import Database
from server.storage.models import CalendarToken
from server.storage.sessions import SessionRecord

#: a lesson without an end lasts this long in the calendar
DEFAULT_LESSON_S = 45 * 60


class CalendarFeeds:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def renew(self, person_id: str) -> str:
        """A new secret for this person's feed; the old one stops working."""
        token = secrets.token_urlsafe(24)
        now = time.time()
        async with self.db.session() as s, s.begin():
            await s.execute(
                update(CalendarToken)
                .where(CalendarToken.person_id == person_id, CalendarToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            s.add(CalendarToken(token_hash=digest(token), person_id=person_id, created_at=now))
        return token

    async def revoke(self, person_id: str) -> None:
        async with self.db.session() as s, s.begin():
            await s.execute(
                update(CalendarToken)
                .where(CalendarToken.person_id == person_id, CalendarToken.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )

    async def person_of(self, token: str) -> str | None:
        if not token or len(token) > 64:
            return None
        q = select(CalendarToken.person_id).where(
            CalendarToken.token_hash == digest(token), CalendarToken.revoked_at.is_(None)
        )
        async with self.db.session() as s:
            return (await s.execute(q)).scalar_one_or_none()


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y%m%dT%H%M%SZ")


def _text(value: str) -> str:
    """An iCalendar TEXT value (RFC 5545 3.3.11)."""
    out = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return out.replace("\r\n", "\\n").replace("\n", "\\n")


def _fold(line: str) -> list[str]:
    """Lines longer than 75 octets are folded (RFC 5545 3.1)."""
    data = line.encode()
    parts = []
    while len(data) > 75:
        cut = 75
        while cut > 0 and (data[cut] & 0xC0) == 0x80:  # not inside a UTF-8 character
            cut -= 1
        parts.append(data[:cut].decode())
        data = b" " + data[cut:]
    parts.append(data.decode())
    return parts


def ical(records: list[SessionRecord], *, base_url: str, host: str, names: dict[str, str]) -> str:
    """The feed: one VEVENT per scheduled lesson."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Sidecoach//lessons//EN",
        "CALSCALE:GREGORIAN",
        "X-WR-CALNAME:Sidecoach lessons",
    ]
    now = _stamp(time.time())
    for r in records:
        start = r.scheduled_for or r.started_at
        if start is None:
            continue
        end = r.ended_at if r.ended_at and r.ended_at > start else start + DEFAULT_LESSON_S
        coach = names.get(r.people.coach_id or "", "")
        summary = f"{r.title} ({r.teacher_name}" + (f", with {coach})" if coach else ")")
        status = "CANCELLED" if r.state.value == "ended" and r.started_at is None else "CONFIRMED"
        lines += [
            "BEGIN:VEVENT",
            f"UID:{r.id}@{host}",
            f"DTSTAMP:{now}",
            f"DTSTART:{_stamp(start)}",
            f"DTEND:{_stamp(end)}",
            f"SUMMARY:{_text(summary)}",
            f"URL:{base_url}/home",
            f"STATUS:{status}",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "".join(f"{part}\r\n" for line in lines for part in _fold(line))
