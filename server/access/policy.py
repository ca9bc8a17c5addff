"""The one access policy: who receives what live, and who reads what afterwards.

Everything a session produces is an ``Item`` (classroom media, a whisper, a
cue, a tally, a note...). Two tables answer every question:

* ``LIVE``: which roles receive an item while the lesson happens (the Router
  asks ``can_consume`` before a Consumer exists; the session addresses its
  messages with ``live_roles``);
* ``READ``: which roles may read it afterwards (recorded files, the review
  timeline, exports);
* ``MAY``: which roles may *do* what (whisper, send a cue, decide the
  recording, delete it, make a clip...): the signaling routes and the HTTP
  routes ask ``may`` and nothing else, and pages learn what to offer from
  ``permissions``.

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
from server.people.principal import PersonRole, Principal
from server.recording.clips import CLIP_NAME
from server.recording.manifest import EVENTS_FILE, MANIFEST_FILE, TRACKS_FILE
from server.storage.sessions import LessonPeople


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
    WHISPER_STATE = "whisper-state"  # who is whispering right now
    CUE_STATE = "cue-state"  # a cue's delivery and acknowledgement, as it happens
    MEASURES = "measures"  # numbers computed from a lesson after it ends


class Action(StrEnum):
    """What a participant or reader may do (``MAY``)."""

    WHISPER = "whisper"  # push-to-talk into the teacher's ear
    SEND_CUE = "send-cue"
    ACK_CUE = "ack-cue"  # the teacher acknowledges a cue on their screen
    TALLY = "tally"
    NOTE = "note"  # a coach's live note (and sharing it)
    DECIDE_RECORDING = "decide-recording"  # plan, pause, resume the recording
    END_SESSION = "end-session"
    DRIVE_PLAYBACK = "drive-playback"  # a debrief's shared player
    COMMENT = "comment"  # review comments and replies
    MAKE_CLIP = "make-clip"
    START_DEBRIEF = "start-debrief"
    DELETE_RECORDING = "delete-recording"
    READ_AUDIT = "read-audit"  # who read this recording
    READ_RAW = "read-raw"  # the raw event log, manifest and track list
    CAMERA_TOKENS = "camera-tokens"  # mint and revoke the lesson's camera tokens (WHIP)
    RECOMPUTE_MEASURES = "recompute-measures"  # compute a lesson's measures again


class Visibility(StrEnum):
    PRIVATE = "private"  # its author only
    TEAM = "team"  # the teacher and the coaches
    EVERYONE = "everyone"  # observers too


TEACHER, COACH, OBSERVER, MEMBER = Role.TEACHER, Role.COACH, Role.OBSERVER, Role.MEMBER
#: a device on a camera token (WHIP): it is in no LIVE, READ or MAY entry
#: (it receives nothing, reads nothing, does nothing) and publishes the
#: classroom (PRODUCE)
CAMERA = Role.CAMERA
#: a debrief's owner (the member whose link started it) acts as its teacher
OWNER = "owner"
_NOBODY: frozenset[str] = frozenset()

#: roles that receive each item live ("recorder" is the Recorder endpoint)
LIVE: dict[Item, frozenset[str]] = {
    Item.CLASSROOM: frozenset({COACH, OBSERVER, RECORDER_ROLE}),
    Item.WHISPER: frozenset({TEACHER, RECORDER_ROLE}),
    Item.MEMBER_MEDIA: frozenset({MEMBER, RECORDER_ROLE}),
    Item.CUE: frozenset({TEACHER}),  # on the teacher's screen
    Item.CUE_STATE: frozenset({COACH}),  # sent / delivered / acknowledged
    Item.TALLY: frozenset({COACH}),
    Item.PRESENCE: frozenset({TEACHER, COACH, OBSERVER, MEMBER}),
    Item.RECORDING: frozenset({TEACHER, COACH, OBSERVER, MEMBER}),
    # the teacher hears it; coaches see it, so they do not talk over each other
    Item.WHISPER_STATE: frozenset({TEACHER, COACH}),
    Item.MEASURES: _NOBODY,  # computed after the lesson ends
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
    Item.CUE_STATE: frozenset({TEACHER, COACH, MEMBER}),
    Item.TALLY: frozenset({TEACHER, COACH, MEMBER}),
    Item.PRESENCE: frozenset({TEACHER, COACH}),
    Item.RECORDING: frozenset({TEACHER, COACH, OBSERVER, MEMBER}),
    Item.WHISPER_STATE: frozenset({TEACHER, COACH}),
    # the lesson's measures: its teacher and coaches (observers, debrief
    # guests: none); the numbers derived from whispers also need WHISPER
    Item.MEASURES: frozenset({TEACHER, COACH}),
    Item.RAW: _NOBODY,
}

#: who may do what (an admin may do every action that is not live: it never
#: joins a lesson). ``OWNER``: a debrief's owner.
MAY: dict[Action, frozenset[str]] = {
    Action.WHISPER: frozenset({COACH}),
    Action.SEND_CUE: frozenset({COACH}),
    Action.ACK_CUE: frozenset({TEACHER}),
    Action.TALLY: frozenset({COACH}),
    Action.NOTE: frozenset({COACH}),
    Action.DECIDE_RECORDING: frozenset({TEACHER, OWNER}),
    Action.END_SESSION: frozenset({TEACHER, OWNER}),
    Action.DRIVE_PLAYBACK: frozenset({MEMBER}),
    Action.COMMENT: frozenset({TEACHER, COACH, MEMBER}),
    Action.MAKE_CLIP: frozenset({TEACHER, COACH}),
    Action.START_DEBRIEF: frozenset({TEACHER}),
    Action.DELETE_RECORDING: frozenset({TEACHER}),
    Action.READ_AUDIT: frozenset({TEACHER}),
    Action.READ_RAW: _NOBODY,
    Action.CAMERA_TOKENS: frozenset({TEACHER}),
    Action.RECOMPUTE_MEASURES: frozenset({TEACHER, COACH}),
}
#: actions taken in a live lesson (an admin never joins one)
LIVE_ACTIONS = frozenset(
    {
        Action.WHISPER,
        Action.SEND_CUE,
        Action.ACK_CUE,
        Action.TALLY,
        Action.NOTE,
        Action.DECIDE_RECORDING,
        Action.END_SESSION,
        Action.DRIVE_PLAYBACK,
    }
)

#: who sees a note or comment of each visibility (besides its author)
VISIBLE_TO: dict[Visibility, frozenset[str]] = {
    Visibility.PRIVATE: _NOBODY,
    Visibility.TEAM: frozenset({TEACHER, COACH, MEMBER}),
    Visibility.EVERYONE: frozenset({TEACHER, COACH, OBSERVER, MEMBER}),
}

#: files only an admin may fetch as they are
RAW_FILES = frozenset({EVENTS_FILE, MANIFEST_FILE, TRACKS_FILE})

#: roles whose pages show shared notes live
LIVE_NOTE_ROLES = frozenset({COACH, MEMBER})

#: which sources each role may publish
PRODUCE: dict[str, frozenset[Source]] = {
    TEACHER: CLASSROOM_SOURCES,
    COACH: frozenset({Source.WHISPER}),
    MEMBER: frozenset({Source.CAMERA, Source.MIC, Source.SCREEN}),
    CAMERA: frozenset({Source.CAMERA, Source.MIC}),
}

#: roles whose published camera, screen and mic are the classroom
CLASSROOM_PUBLISHERS = frozenset({TEACHER, CAMERA})

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
    """The item a published track is: the classroom (the teacher's, or a
    room camera's), a whisper, or a debrief member's own media."""
    if source == Source.WHISPER:
        return Item.WHISPER
    if publisher_role == MEMBER:
        return Item.MEMBER_MEDIA
    return Item.CLASSROOM if publisher_role in CLASSROOM_PUBLISHERS else Item.RAW


@dataclass(frozen=True)
class Reader:
    """Who is asking: a role with the invite that identifies them, or an admin."""

    role: Role | None
    invite_id: str | None = None
    name: str | None = None
    #: a debrief's owner (decides its recording, ends it)
    owner: bool = False
    #: a signed-in person (their ``invite_id`` is ``p-<person_id>``)
    person_id: str | None = None

    @classmethod
    def admin(cls) -> Reader:
        return cls(None, None, "admin")

    @property
    def is_admin(self) -> bool:
        return self.role is None

    def describe(self) -> dict[str, Any]:
        who: dict[str, Any] = {"person": self.person_id} if self.person_id else {}
        if self.is_admin:
            return {"admin": True, **who}
        return {"role": str(self.role), "name": self.name, "invite": self.invite_id, **who}

    @property
    def roles(self) -> frozenset[str]:
        """The roles the tables know this reader by (its role, and ``OWNER``)."""
        if self.role is None:
            return _NOBODY
        return frozenset({str(self.role), OWNER}) if self.owner else frozenset({str(self.role)})


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

    def receives(self, role: str, item: Item) -> bool:
        """Whether a participant of ``role`` is sent ``item`` live."""
        return role in LIVE.get(item, _NOBODY)

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

    # -- actions -------------------------------------------------------------

    def may(self, reader: Reader, action: Action) -> bool:
        """Whether this participant or reader may do ``action``."""
        if reader.is_admin:
            return action not in LIVE_ACTIONS
        return bool(reader.roles & MAY[action])

    def files(self, reader: Reader, manifest: dict[str, Any]) -> set[str]:
        """The files of a recording (described by its manifest) this reader
        may fetch: the tracks of what it may read, the review files and
        clips of the classroom, and the raw logs for admins."""
        files = {
            str(t["file"])
            for t in manifest.get("tracks", [])
            if "file" in t and self.can_read_track(reader, t.get("source", ""), t.get("role", ""))
        }
        review = manifest.get("review") or {}
        if self.can_read(reader, Item.CLASSROOM):
            for name in (review.get("classroom"), review.get("thumbnail")):
                if name:
                    files.add(str(name))
            files |= {str(c["file"]) for c in review.get("cameras", []) if c.get("file")}
        if self.may(reader, Action.READ_RAW):
            files |= RAW_FILES
        return files

    def may_fetch(self, reader: Reader, manifest: dict[str, Any], name: str) -> bool:
        """Whether this reader may fetch the file ``name`` of a recording: one
        of ``files``, or a clip (a stretch of the classroom video)."""
        if CLIP_NAME.match(name):
            return self.can_read(reader, Item.CLASSROOM)
        return name in self.files(reader, manifest)

    def permissions(self, reader: Reader) -> dict[str, bool]:
        """What a page may offer this reader (the pages ask nothing else)."""
        return {
            "whispers": self.can_read(reader, Item.WHISPER),
            "cues": self.can_read(reader, Item.CUE),
            "tallies": self.can_read(reader, Item.TALLY),
            "presence": self.can_read(reader, Item.PRESENCE),
            "raw": self.may(reader, Action.READ_RAW),
            "delete": self.may(reader, Action.DELETE_RECORDING),
            "audit": self.may(reader, Action.READ_AUDIT),
            "comment": self.may(reader, Action.COMMENT),
            "clip": self.may(reader, Action.MAKE_CLIP),
            "debrief": self.may(reader, Action.START_DEBRIEF),
            "measures": self.can_read(reader, Item.MEASURES),
            "recomputeMeasures": self.may(reader, Action.RECOMPUTE_MEASURES),
            # live
            "whisper": self.may(reader, Action.WHISPER),
            "sendCue": self.may(reader, Action.SEND_CUE),
            "tally": self.may(reader, Action.TALLY),
            "note": self.may(reader, Action.NOTE),
            "decideRecording": self.may(reader, Action.DECIDE_RECORDING),
            "endSession": self.may(reader, Action.END_SESSION),
            "drivePlayback": self.may(reader, Action.DRIVE_PLAYBACK),
            "cameraTokens": self.may(reader, Action.CAMERA_TOKENS),
        }


# -- people: signed-in persons and their lessons ---------------------------------


class Relation(StrEnum):
    """How a signed-in person stands to one lesson (the strongest applies)."""

    TEACHER = "teacher"  # the lesson's teacher
    SCHEDULING_COACH = "scheduling-coach"  # the coach who scheduled it
    CASELOAD_COACH = "caseload-coach"  # its teacher is in this coach's caseload
    INVITED_COACH = "invited-coach"  # the teacher invited this coach to it
    GROUP_MEMBER = "group-member"  # a debrief started for this person's group
    SHARED = "shared"  # the teacher shared the recording with this person
    SCHOOL_ADMIN = "school-admin"  # an admin of the lesson's school
    DISTRICT_ADMIN = "district-admin"
    NONE = "none"


#: strongest first: the first relation that holds decides
RELATION_ORDER: tuple[Relation, ...] = (
    Relation.TEACHER,
    Relation.SCHEDULING_COACH,
    Relation.CASELOAD_COACH,
    Relation.INVITED_COACH,
    Relation.GROUP_MEMBER,
    Relation.DISTRICT_ADMIN,
    Relation.SCHOOL_ADMIN,
    Relation.SHARED,
)

#: the role each relation reads a lesson with (``None``: as an admin;
#: missing: not at all). A school admin and a person a recording was shared
#: with see what an observer sees: the classroom, never a whisper.
PERSON_READS_AS: dict[Relation, Role | None] = {
    Relation.TEACHER: Role.TEACHER,
    Relation.SCHEDULING_COACH: Role.COACH,
    Relation.CASELOAD_COACH: Role.COACH,
    Relation.INVITED_COACH: Role.COACH,
    Relation.GROUP_MEMBER: Role.MEMBER,
    Relation.SHARED: Role.OBSERVER,
    Relation.SCHOOL_ADMIN: Role.OBSERVER,
    Relation.DISTRICT_ADMIN: None,
}

#: relations that may join the lesson live from their home page (an admin
#: or a reader of a shared recording does not)
PERSON_JOINS_LIVE: frozenset[Relation] = frozenset(
    {
        Relation.TEACHER,
        Relation.SCHEDULING_COACH,
        Relation.CASELOAD_COACH,
        Relation.INVITED_COACH,
        Relation.GROUP_MEMBER,
    }
)

#: relations whose every read is written to the audit log (all reads of
#: recorded data are; these also for lists and lesson pages)
AUDITED_RELATIONS: frozenset[Relation] = frozenset(
    {Relation.DISTRICT_ADMIN, Relation.SCHOOL_ADMIN, Relation.SHARED}
)


class PersonAction(StrEnum):
    """What a person may do outside a lesson (``PERSON_MAY``)."""

    SCHEDULE_LESSON = "schedule-lesson"  # with a teacher of their caseload
    START_GROUP_DEBRIEF = "start-group-debrief"  # for a group they belong to
    MAKE_GROUP = "make-group"
    MANAGE_PEOPLE = "manage-people"  # accounts, roles, caseloads (their school)
    MANAGE_DISTRICT = "manage-district"  # schools, domains, district admins
    SHARE_RECORDING = "share-recording"  # only the lesson's teacher (Relation)
    CALENDAR = "calendar"  # their own iCalendar feed


#: person roles that may do each action (share: the lesson's teacher only)
PERSON_MAY: dict[PersonAction, frozenset[PersonRole]] = {
    PersonAction.SCHEDULE_LESSON: frozenset({PersonRole.COACH}),
    PersonAction.START_GROUP_DEBRIEF: frozenset({PersonRole.COACH, PersonRole.TEACHER}),
    PersonAction.MAKE_GROUP: frozenset(
        {PersonRole.COACH, PersonRole.SCHOOL_ADMIN, PersonRole.DISTRICT_ADMIN}
    ),
    PersonAction.MANAGE_PEOPLE: frozenset({PersonRole.SCHOOL_ADMIN, PersonRole.DISTRICT_ADMIN}),
    PersonAction.MANAGE_DISTRICT: frozenset({PersonRole.DISTRICT_ADMIN}),
    PersonAction.SHARE_RECORDING: frozenset(),
    PersonAction.CALENDAR: frozenset(PersonRole),
}


@dataclass(frozen=True)
class LessonFacts:
    """What the policy needs to know about one lesson."""

    people: LessonPeople
    #: persons the lesson was opened to: person id -> "coach" or "viewer"
    shares: dict[str, str]

    @classmethod
    def of(cls, people: LessonPeople, shares: dict[str, str] | None = None) -> LessonFacts:
        return cls(people, dict(shares or {}))


def relation(person: Principal, lesson: LessonFacts) -> Relation:
    """How ``person`` stands to ``lesson``: the strongest relation that holds."""
    p = lesson.people
    holds = {
        Relation.TEACHER: p.teacher_id == person.person_id,
        Relation.SCHEDULING_COACH: p.coach_id == person.person_id,
        Relation.CASELOAD_COACH: p.teacher_id is not None and p.teacher_id in person.caseload,
        Relation.INVITED_COACH: lesson.shares.get(person.person_id) == "coach",
        Relation.GROUP_MEMBER: p.group_id is not None and p.group_id in person.groups,
        Relation.DISTRICT_ADMIN: person.has(PersonRole.DISTRICT_ADMIN),
        Relation.SCHOOL_ADMIN: p.school_id is not None
        and p.school_id in person.schools(PersonRole.SCHOOL_ADMIN),
        Relation.SHARED: lesson.shares.get(person.person_id) == "viewer",
    }
    return next((r for r in RELATION_ORDER if holds[r]), Relation.NONE)


def _role_in(rel: Relation, lesson: LessonFacts) -> Role | None:
    if lesson.people.group_id is not None and rel in PERSON_JOINS_LIVE:
        return Role.MEMBER  # a group's debrief: whoever joins it is a member
    return PERSON_READS_AS[rel]


def person_reader(person: Principal, lesson: LessonFacts) -> Reader | None:
    """The reader a person reads this lesson as (None: they may not)."""
    rel = relation(person, lesson)
    if rel not in PERSON_READS_AS:
        return None
    return Reader(_role_in(rel, lesson), person.invite_id, person.name, person_id=person.person_id)


def person_live_role(person: Principal, lesson: LessonFacts) -> Role | None:
    """The role a person joins this lesson live with (None: they may not)."""
    rel = relation(person, lesson)
    return _role_in(rel, lesson) if rel in PERSON_JOINS_LIVE else None


def person_may(person: Principal, action: PersonAction) -> bool:
    return bool(person.roles & PERSON_MAY[action])


def may_share(person: Principal, lesson: LessonFacts) -> bool:
    """Only a lesson's teacher opens its recording to someone beyond them."""
    return relation(person, lesson) is Relation.TEACHER and lesson.people.group_id is None


def may_schedule_with(person: Principal, teacher_id: str) -> bool:
    """A coach schedules lessons with the teachers of their caseload."""
    return person_may(person, PersonAction.SCHEDULE_LESSON) and teacher_id in person.caseload


def may_manage_school(person: Principal, school_id: str | None) -> bool:
    """A district admin manages every school; a school admin their own."""
    if person.has(PersonRole.DISTRICT_ADMIN):
        return True
    return school_id is not None and school_id in person.schools(PersonRole.SCHOOL_ADMIN)


def audited(person: Principal, lesson: LessonFacts) -> bool:
    return relation(person, lesson) in AUDITED_RELATIONS
