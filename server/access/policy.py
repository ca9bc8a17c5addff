"""The one access policy: who receives what live, and who reads what afterwards.

Everything a session produces is an ``Item`` (classroom media, a whisper, a
cue, a tally, a note...). Two tables answer every question:

* ``LIVE``: which roles receive an item while the lesson happens (the Router
  asks ``can_consume`` before a Consumer exists; the session addresses its
  messages with ``live_roles``);
* ``READ``: which roles may read it afterwards (recorded files, the review
  timeline, exports).

Notes and comments carry their own ``Visibility`` on top: private to their
author (by invite), shared with the coaching team, or with everyone.

The rule the tables keep: a whisper or a private note never reaches a role
that could not hear or see it live, and observers get the classroom only.
An admin (``Reader.admin()``) reads everything; only an admin gets the raw
event log and manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from server.core.roles import Role
from server.media.policy import CLASSROOM_SOURCES, RECORDER_ROLE, ProducerInfo, Source


class Item(StrEnum):
    CLASSROOM = "classroom"  # the teacher's camera, screen and classroom mic
    WHISPER = "whisper"  # a coach's voice in the teacher's ear
    MEMBER_MEDIA = "member-media"  # a debrief member's camera and mic
    CUE = "cue"  # on-screen prompts, their delivery and acknowledgement
    TALLY = "tally"  # one-tap counts of observed practice
    NOTE = "note"  # a coach's live note (visibility of its own)
    COMMENT = "comment"  # a time-stamped review comment (visibility of its own)
    PRESENCE = "presence"  # who joined and left
    RECORDING = "recording"  # recording started/paused/resumed/stopped, tracks, gaps
    RAW = "raw"  # the raw event log and manifest: admins only


class Visibility(StrEnum):
    PRIVATE = "private"  # its author only
    TEAM = "team"  # the teacher and the coaches
    EVERYONE = "everyone"  # observers too


TEACHER, COACH, OBSERVER, MEMBER = Role.TEACHER, Role.COACH, Role.OBSERVER, Role.MEMBER
_NOBODY: frozenset[str] = frozenset()

#: roles that receive each item live ("recorder" is the Recorder endpoint)
LIVE: dict[Item, frozenset[str]] = {
    Item.CLASSROOM: frozenset({COACH, OBSERVER, RECORDER_ROLE}),
    Item.WHISPER: frozenset({TEACHER, RECORDER_ROLE}),
    Item.MEMBER_MEDIA: frozenset({MEMBER, RECORDER_ROLE}),
    Item.CUE: frozenset({TEACHER, COACH}),
    Item.TALLY: frozenset({COACH}),
    Item.PRESENCE: frozenset({TEACHER, COACH, OBSERVER, MEMBER}),
    Item.RECORDING: frozenset({TEACHER, COACH, OBSERVER, MEMBER}),
    Item.RAW: _NOBODY,
}

#: roles that may read each item afterwards (notes and comments: see Visibility)
READ: dict[Item, frozenset[str]] = {
    Item.CLASSROOM: frozenset({TEACHER, COACH, OBSERVER, MEMBER}),
    Item.WHISPER: frozenset({TEACHER, COACH}),
    Item.MEMBER_MEDIA: frozenset({MEMBER}),
    # a debrief's members (invited by the lesson's teacher) discuss the cues
    # and counts with the video; whispers stay with who heard them live
    Item.CUE: frozenset({TEACHER, COACH, MEMBER}),
    Item.TALLY: frozenset({TEACHER, COACH, MEMBER}),
    Item.PRESENCE: frozenset({TEACHER, COACH}),
    Item.RECORDING: frozenset({TEACHER, COACH, OBSERVER, MEMBER}),
    Item.RAW: _NOBODY,
}

#: who sees a note or comment of each visibility (besides its author)
VISIBLE_TO: dict[Visibility, frozenset[str]] = {
    Visibility.PRIVATE: _NOBODY,
    Visibility.TEAM: frozenset({TEACHER, COACH, MEMBER}),
    Visibility.EVERYONE: frozenset({TEACHER, COACH, OBSERVER, MEMBER}),
}

#: roles whose pages show shared notes live
LIVE_NOTE_ROLES = frozenset({COACH, MEMBER})

#: which sources each role may publish
PRODUCE: dict[str, frozenset[Source]] = {
    TEACHER: CLASSROOM_SOURCES,
    COACH: frozenset({Source.WHISPER}),
    MEMBER: frozenset({Source.CAMERA, Source.MIC, Source.SCREEN}),
}

#: event log types -> item (types not listed are RAW: admins only)
EVENT_ITEMS: dict[str, Item] = {
    "join": Item.PRESENCE,
    "leave": Item.PRESENCE,
    "whisper-start": Item.WHISPER,
    "whisper-stop": Item.WHISPER,
    "cue": Item.CUE,
    "cue-delivered": Item.CUE,
    "cue-ack": Item.CUE,
    "tally": Item.TALLY,
    "tally-undo": Item.TALLY,
    "note": Item.NOTE,
    "note-shared": Item.NOTE,
    "comment": Item.COMMENT,
    "recording-started": Item.RECORDING,
    "recording-pause": Item.RECORDING,
    "recording-resume": Item.RECORDING,
    "recording-stopped": Item.RECORDING,
    "recording-error": Item.RECORDING,
    "recording-plan": Item.RECORDING,
    "track-added": Item.RECORDING,
    "track-removed": Item.RECORDING,
    "media-gap": Item.RECORDING,
}


def item_of_source(source: Source | str, publisher_role: str) -> Item:
    """The item a published track is: the teacher's classroom, a whisper,
    or a debrief member's own media."""
    if source == Source.WHISPER:
        return Item.WHISPER
    if publisher_role == MEMBER:
        return Item.MEMBER_MEDIA
    return Item.CLASSROOM if publisher_role == TEACHER else Item.RAW


@dataclass(frozen=True)
class Reader:
    """Who is asking: a role with the invite that identifies them, or an admin."""

    role: Role | None
    invite_id: str | None = None
    name: str | None = None

    @classmethod
    def admin(cls) -> Reader:
        return cls(None, None, "admin")

    @property
    def is_admin(self) -> bool:
        return self.role is None

    def describe(self) -> dict[str, Any]:
        if self.is_admin:
            return {"admin": True}
        return {"role": str(self.role), "name": self.name, "invite": self.invite_id}


class AccessPolicy:
    """Implements ``media.policy.RoutingPolicy`` (live) and answers every
    read of recorded data (afterwards) from the same tables."""

    # -- live -------------------------------------------------------------

    def can_produce(self, role: str, source: Source) -> bool:
        return source in PRODUCE.get(role, frozenset())

    def can_consume(self, producer: ProducerInfo, participant_id: str, role: str) -> bool:
        if participant_id == producer.participant_id:
            return False
        return role in LIVE[item_of_source(producer.source, producer.role)]

    def live_roles(self, item: Item) -> frozenset[str]:
        return LIVE.get(item, _NOBODY)

    def receives_note(self, role: str, *, is_author: bool, visibility: Visibility) -> bool:
        """Whether a participant is sent a note live: its author, and the
        coaches (or debrief members) it is shared with. The teacher's
        classroom screen shows cues only; teachers and observers read shared
        notes afterwards."""
        return is_author or (role in LIVE_NOTE_ROLES and role in VISIBLE_TO[visibility])

    # -- afterwards ---------------------------------------------------------

    def can_read(self, reader: Reader, item: Item) -> bool:
        """Items with a table entry; notes and comments: ``can_read_authored``."""
        return reader.is_admin or str(reader.role) in READ.get(item, _NOBODY)

    def can_read_track(self, reader: Reader, source: str, publisher_role: str) -> bool:
        return self.can_read(reader, item_of_source(source, publisher_role))

    def can_read_authored(
        self, reader: Reader, *, author_invite: str | None, visibility: Visibility
    ) -> bool:
        """A note or comment: its author always, others by its visibility."""
        if reader.is_admin:
            return True
        if author_invite is not None and reader.invite_id == author_invite:
            return True
        return str(reader.role) in VISIBLE_TO[visibility]

    def event_item(self, event_type: str) -> Item:
        return EVENT_ITEMS.get(event_type, Item.RAW)

    def permissions(self, reader: Reader) -> dict[str, bool]:
        """What a review page may offer this reader."""
        return {
            "whispers": self.can_read(reader, Item.WHISPER),
            "cues": self.can_read(reader, Item.CUE),
            "tallies": self.can_read(reader, Item.TALLY),
            "presence": self.can_read(reader, Item.PRESENCE),
            "raw": reader.is_admin,
            "delete": reader.is_admin or reader.role == TEACHER,
            "audit": reader.is_admin or reader.role == TEACHER,
            "comment": reader.is_admin or str(reader.role) in (TEACHER, COACH, MEMBER),
        }
