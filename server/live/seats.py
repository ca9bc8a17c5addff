"""Seats in a live lesson: who may take one, and whose seat a join takes over.

* A teacher invite holds one seat: joining again with it replaces the old
  seat (a teacher whose old connection is a ghost always gets back in).
* A coach or observer invite holds up to ``limits.seats_per_invite``; a
  further join with it replaces that invite's oldest seat rather than being
  refused, so a reconnect is never locked out by its own ghost.
* ``limits.max_participants`` counts everyone, and one seat of it is always
  kept for the teacher: a teacher is never refused for a full session.
* A camera token (a WHIP device) holds one seat, replaced like a teacher's:
  an encoder that reconnects takes over its old stream.
* ``member`` invites are for debrief rooms, and only member invites are:
  in a debrief nobody is the teacher, so no seat is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from server.core.config import Limits
from server.core.errors import Forbidden, LimitReached
from server.core.roles import Role

#: seats of ``max_participants`` only a teacher may take
TEACHER_SEATS = 1


class SeatHolder(Protocol):
    @property
    def role(self) -> Role: ...


#: who may take a seat, by the kind of session
LESSON_ROLES = frozenset({Role.TEACHER, Role.COACH, Role.OBSERVER, Role.CAMERA})
DEBRIEF_ROLES = frozenset({Role.MEMBER})


class Seats:
    def __init__(self, limits: Limits, *, debrief: bool = False) -> None:
        self._limits = limits
        self._debrief = debrief
        #: participant id -> invite id, oldest first
        self._invite_of: dict[str, str] = {}

    def claim(
        self, role: Role, invite_id: str, participants: Mapping[str, SeatHolder]
    ) -> list[str]:
        """Check a join with ``invite_id`` as ``role`` against the seats taken
        by ``participants``; return the participants (oldest first) whose
        seats it takes over. Raises Forbidden or LimitReached."""
        if self._debrief and role not in DEBRIEF_ROLES:
            raise Forbidden(f"a {role} invite is for a lesson, not a debrief room")
        if not self._debrief and role not in LESSON_ROLES:
            raise Forbidden(f"a {role} invite is for a debrief room, not a live lesson")
        one_seat = role in (Role.TEACHER, Role.CAMERA)
        per_invite = 1 if one_seat else max(1, self._limits.seats_per_invite)
        same = [pid for pid, iid in self._invite_of.items() if invite_id and iid == invite_id]
        replaced = same[: max(0, len(same) - per_invite + 1)]
        if role != Role.TEACHER:
            kept = 0 if self._debrief else TEACHER_SEATS
            others = sum(
                1
                for pid, p in participants.items()
                if p.role != Role.TEACHER and pid not in replaced
            )
            if others >= self._limits.max_participants - kept:
                raise LimitReached("session is full")
        return replaced

    def take(self, participant_id: str, invite_id: str) -> None:
        self._invite_of[participant_id] = invite_id

    def release(self, participant_id: str) -> None:
        self._invite_of.pop(participant_id, None)
