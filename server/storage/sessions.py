"""Session records (one coached lesson or debrief: title, teacher,
state, settings, recording decisions) and the ``SessionStore`` Protocol that
keeps them. The embedded store is SQLite (``sqlite_sessions.py``); several
boxes keep them in Redis (``server/cluster/redis_store.py``); the
composition root (``server/app.py``) chooses one.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from server.core.errors import InvalidMessage, InvalidState
from server.core.roles import SessionState

DEFAULT_PROMPTS: tuple[str, ...] = (
    "Praise specific behaviour",
    "Wait time",
    "Opportunity to respond",
    "Proximity",
    "Check for understanding",
    "Transition",
)
DEFAULT_TALLIES: tuple[str, ...] = (
    "OTR",
    "BSP",
    "Redirection",
    "Student response",
    "Transition",
)

MAX_TITLE_CHARS = 120
MAX_NAME_CHARS = 120
MAX_PROMPTS = 24
MAX_PROMPT_CHARS = 80
MAX_TALLIES = 12
MAX_TALLY_CHARS = 40
#: revoked camera tokens one lesson remembers
MAX_REVOKED_CAMERA_TOKENS = 200

#: legal state changes; setting the current state again is a no-op
TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    SessionState.SCHEDULED: frozenset({SessionState.LIVE, SessionState.ENDED}),
    SessionState.LIVE: frozenset({SessionState.ENDED}),
    SessionState.ENDED: frozenset(),
}


@dataclass(frozen=True)
class SessionSettings:
    recording: bool = True
    #: only one coach may whisper at a time
    whisper_single: bool = False
    prompts: tuple[str, ...] = DEFAULT_PROMPTS
    tally_categories: tuple[str, ...] = DEFAULT_TALLIES
    #: ids of the lesson's camera tokens that were revoked (kept with the
    #: lesson, so a revocation survives a restart)
    revoked_camera_tokens: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "recording": self.recording,
            "whisper_single": self.whisper_single,
            "prompts": list(self.prompts),
            "tally_categories": list(self.tally_categories),
        }
        if self.revoked_camera_tokens:
            data["revoked_camera_tokens"] = list(self.revoked_camera_tokens)
        return data

    @classmethod
    def from_json(cls, data: Any) -> SessionSettings:
        """Settings from a JSON object (missing keys take defaults); validated."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidMessage("settings must be an object")
        unknown = set(data) - {
            "recording",
            "whisper_single",
            "prompts",
            "tally_categories",
            "revoked_camera_tokens",
        }
        if unknown:
            raise InvalidMessage(f"unknown settings: {', '.join(sorted(unknown))}")
        kwargs: dict[str, Any] = {}
        for key in ("recording", "whisper_single"):
            if key in data:
                if not isinstance(data[key], bool):
                    raise InvalidMessage(f"settings.{key} must be true or false")
                kwargs[key] = data[key]
        for key in ("prompts", "tally_categories", "revoked_camera_tokens"):
            if key in data:
                value = data[key]
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise InvalidMessage(f"settings.{key} must be a list of strings")
                kwargs[key] = tuple(value)
        settings = cls(**kwargs)
        validate_settings(settings)
        return settings


class SessionKind(StrEnum):
    LESSON = "lesson"
    DEBRIEF = "debrief"


@dataclass(frozen=True)
class RecordingDecision:
    """One decision about recording this lesson: on or off, who, when."""

    recording: bool
    by_role: str  # "admin" for the session's settings, else the participant's role
    by_name: str
    at: float  # unix seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "recording": self.recording,
            "by_role": self.by_role,
            "by_name": self.by_name,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecordingDecision:
        return cls(
            bool(data.get("recording")),
            str(data.get("by_role", "")),
            str(data.get("by_name", "")),
            float(data.get("at", 0.0)),
        )


@dataclass(frozen=True)
class LessonPeople:
    """The people a lesson belongs to, by id: what the access policy asks
    about a signed-in person's lessons."""

    teacher_id: str | None = None
    #: the coach who scheduled it
    coach_id: str | None = None
    school_id: str | None = None
    #: a debrief started for a coaching group
    group_id: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "teacher_id": self.teacher_id,
            "coach_id": self.coach_id,
            "school_id": self.school_id,
            "group_id": self.group_id,
        }

    @classmethod
    def from_json(cls, data: Any) -> LessonPeople:
        data = data if isinstance(data, dict) else {}
        return cls(*(data.get(k) for k in ("teacher_id", "coach_id", "school_id", "group_id")))


@dataclass(frozen=True)
class SessionRecord:
    id: str
    title: str
    teacher_name: str
    state: SessionState
    created_at: float  # unix seconds
    scheduled_for: float | None
    started_at: float | None
    ended_at: float | None
    settings: SessionSettings = field(default_factory=SessionSettings)
    #: the teacher's (and the admin's) decisions about recording, oldest first
    recording_decisions: tuple[RecordingDecision, ...] = ()
    #: a coached lesson, or a debrief room watching one recording together
    kind: SessionKind = field(default_factory=lambda: SessionKind.LESSON)
    #: the recording a debrief watches (None for a lesson)
    recording_id: str | None = None
    #: who it belongs to (None: made with the admin token or an invite link)
    people: LessonPeople = field(default_factory=lambda: LessonPeople())

    @property
    def recording_planned(self) -> bool:
        """Whether the lesson is recorded when the teacher goes live: the
        latest decision, else the session's settings."""
        if self.recording_decisions:
            return self.recording_decisions[-1].recording
        return self.settings.recording

    def to_json(self) -> dict[str, Any]:
        """As JSON (times in unix seconds, or null): what pages and the API
        get, and what the Redis store keeps."""
        return {
            "id": self.id,
            "title": self.title,
            "teacher_name": self.teacher_name,
            "state": self.state.value,
            "created_at": self.created_at,
            "scheduled_for": self.scheduled_for,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "settings": self.settings.to_json(),
            "kind": str(self.kind),
            "recording_id": self.recording_id,
            "recording_planned": self.recording_planned,
            "recording_decisions": [d.to_json() for d in self.recording_decisions],
            "people": self.people.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionRecord:
        """The inverse of ``to_json`` (fields it derives are ignored; settings
        missing from older records take their defaults)."""
        settings = data.get("settings") or {}
        defaults = SessionSettings()
        return cls(
            id=data["id"],
            title=data["title"],
            teacher_name=data["teacher_name"],
            state=SessionState(data["state"]),
            created_at=float(data["created_at"]),
            scheduled_for=data.get("scheduled_for"),
            started_at=data.get("started_at"),
            ended_at=data.get("ended_at"),
            settings=SessionSettings(
                recording=bool(settings.get("recording", True)),
                whisper_single=bool(settings.get("whisper_single", False)),
                prompts=tuple(settings.get("prompts") or defaults.prompts),
                tally_categories=tuple(
                    settings.get("tally_categories") or defaults.tally_categories
                ),
                revoked_camera_tokens=tuple(
                    str(t) for t in settings.get("revoked_camera_tokens") or ()
                ),
            ),
            recording_decisions=tuple(
                RecordingDecision.from_json(d) for d in data.get("recording_decisions") or []
            ),
            kind=SessionKind(data.get("kind") or SessionKind.LESSON),
            recording_id=data.get("recording_id"),
            people=LessonPeople.from_json(data.get("people")),
        )

    def moved_to(self, state: SessionState, at: float) -> SessionRecord | None:
        """This record in ``state`` (None: it is in it already); raises
        ``invalid_state`` for a move the lifecycle does not allow."""
        if self.state == state:
            return None
        if state not in TRANSITIONS[self.state]:
            raise InvalidState(f"session {self.id!r} cannot go from {self.state} to {state}")
        if state == SessionState.LIVE:
            return replace(self, state=state, started_at=at)
        return replace(self, state=state, ended_at=at)

    def with_decision(self, decision: RecordingDecision) -> SessionRecord | None:
        """This record with ``decision`` appended (None: it is there already)."""
        if decision in self.recording_decisions:
            return None
        decisions = tuple(sorted((*self.recording_decisions, decision), key=lambda d: d.at))
        return replace(self, recording_decisions=decisions)


def new_session_id() -> str:
    """12 url-safe characters that never start with '-' (a CLI would read
    such an id as an option)."""
    return "s" + secrets.token_urlsafe(9)[1:]


class SessionStore(Protocol):
    async def create(
        self,
        *,
        title: str,
        teacher_name: str,
        settings: SessionSettings,
        scheduled_for: float | None = None,
        kind: SessionKind = SessionKind.LESSON,
        recording_id: str | None = None,
        people: LessonPeople | None = None,
    ) -> SessionRecord: ...

    async def get(self, session_id: str) -> SessionRecord: ...

    async def list(self, states: Iterable[SessionState] | None = None) -> list[SessionRecord]: ...

    async def set_state(
        self, session_id: str, state: SessionState, *, at: float
    ) -> SessionRecord: ...

    async def add_recording_decision(
        self, session_id: str, decision: RecordingDecision
    ) -> SessionRecord: ...

    async def close(self) -> None: ...


def _clean_text(value: object, what: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise InvalidMessage(f"{what} must be a string")
    text = value.strip()
    if not text:
        raise InvalidMessage(f"{what} must not be empty")
    if len(text) > max_chars:
        raise InvalidMessage(f"{what} must be at most {max_chars} characters")
    return text


def _check_list(values: tuple[str, ...], what: str, max_items: int, max_chars: int) -> None:
    if len(values) > max_items:
        raise InvalidMessage(f"{what}: at most {max_items} entries")
    for v in values:
        if not isinstance(v, str) or not 1 <= len(v) <= max_chars:
            raise InvalidMessage(f"{what}: each entry must be 1..{max_chars} characters")


def validate_settings(settings: SessionSettings) -> None:
    """Raise InvalidMessage unless ``settings`` is within the limits."""
    _check_list(settings.prompts, "prompts", MAX_PROMPTS, MAX_PROMPT_CHARS)
    _check_list(settings.tally_categories, "tally_categories", MAX_TALLIES, MAX_TALLY_CHARS)
    if len(settings.revoked_camera_tokens) > MAX_REVOKED_CAMERA_TOKENS:
        raise InvalidMessage(f"at most {MAX_REVOKED_CAMERA_TOKENS} revoked camera tokens")


def new_record(
    *,
    title: str,
    teacher_name: str,
    settings: SessionSettings,
    scheduled_for: float | None,
    kind: SessionKind,
    recording_id: str | None,
    people: LessonPeople | None = None,
) -> SessionRecord:
    """A new scheduled session, its fields checked (every store creates them so)."""
    validate_settings(settings)
    return SessionRecord(
        id=new_session_id(),
        title=_clean_text(title, "title", MAX_TITLE_CHARS),
        teacher_name=_clean_text(teacher_name, "teacher_name", MAX_NAME_CHARS),
        state=SessionState.SCHEDULED,
        created_at=time.time(),
        scheduled_for=scheduled_for,
        started_at=None,
        ended_at=None,
        settings=settings,
        kind=kind,
        recording_id=recording_id,
        people=people or LessonPeople(),
    )


DEMO_TITLE = "Demo lesson"
DEMO_TEACHER = "Demo teacher"


async def ensure_demo_session(store: SessionStore) -> SessionRecord:
    """The not-yet-ended session titled "Demo lesson", created if missing."""
    for record in await store.list([SessionState.SCHEDULED, SessionState.LIVE]):
        if record.title == DEMO_TITLE:
            return record
    return await store.create(
        title=DEMO_TITLE, teacher_name=DEMO_TEACHER, settings=SessionSettings()
    )


def parse_when(value: object) -> float | None:
    """ISO-8601 date-time (or null) -> unix seconds. Naive times are local time."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidMessage("scheduled_for must be an ISO-8601 date-time")
    try:
        return datetime.fromisoformat(value.strip()).timestamp()
    except ValueError as exc:
        raise InvalidMessage("scheduled_for must be an ISO-8601 date-time") from exc
