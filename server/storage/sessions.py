"""Session metadata storage behind a Protocol.

The embedded implementation is SQLite in ``data_dir/sidecoach.sqlite3``, so
scheduled sessions (and the invites minted for them) survive restarts. A
Redis-backed store can implement the same Protocol; ``open_store`` chooses.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

from server.core.config import Config
from server.core.errors import InvalidMessage, SessionNotFound, SidecoachError
from server.core.roles import SessionState
from server.storage.sqlite_worker import SqliteWorker, add_missing_columns

logger = logging.getLogger(__name__)

DB_FILE_NAME = "sidecoach.sqlite3"

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

#: legal state changes; setting the current state again is a no-op
_TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    SessionState.SCHEDULED: frozenset({SessionState.LIVE, SessionState.ENDED}),
    SessionState.LIVE: frozenset({SessionState.ENDED}),
    SessionState.ENDED: frozenset(),
}

T = TypeVar("T")


@dataclass(frozen=True)
class SessionSettings:
    recording: bool = True
    #: only one coach may whisper at a time
    whisper_single: bool = False
    prompts: tuple[str, ...] = DEFAULT_PROMPTS
    tally_categories: tuple[str, ...] = DEFAULT_TALLIES

    def to_json(self) -> dict[str, Any]:
        return {
            "recording": self.recording,
            "whisper_single": self.whisper_single,
            "prompts": list(self.prompts),
            "tally_categories": list(self.tally_categories),
        }

    @classmethod
    def from_json(cls, data: Any) -> SessionSettings:
        """Settings from a JSON object (missing keys take defaults); validated."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidMessage("settings must be an object")
        unknown = set(data) - {"recording", "whisper_single", "prompts", "tally_categories"}
        if unknown:
            raise InvalidMessage(f"unknown settings: {', '.join(sorted(unknown))}")
        kwargs: dict[str, Any] = {}
        for key in ("recording", "whisper_single"):
            if key in data:
                if not isinstance(data[key], bool):
                    raise InvalidMessage(f"settings.{key} must be true or false")
                kwargs[key] = data[key]
        for key in ("prompts", "tally_categories"):
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

    @property
    def recording_planned(self) -> bool:
        """Whether the lesson is recorded when the teacher goes live: the
        latest decision, else the session's settings."""
        if self.recording_decisions:
            return self.recording_decisions[-1].recording
        return self.settings.recording


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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    teacher_name TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    scheduled_for REAL,
    started_at REAL,
    ended_at REAL,
    settings TEXT NOT NULL,
    recording_decisions TEXT NOT NULL DEFAULT '[]',
    kind TEXT NOT NULL DEFAULT 'lesson',
    recording_id TEXT
);
CREATE INDEX IF NOT EXISTS sessions_state ON sessions(state);
"""
#: columns added after the first release: (name, definition) for ALTER TABLE
_ADDED_COLUMNS = (
    ("recording_decisions", "TEXT NOT NULL DEFAULT '[]'"),
    ("kind", "TEXT NOT NULL DEFAULT 'lesson'"),
    ("recording_id", "TEXT"),
)
_COLUMNS = (
    "id, title, teacher_name, state, created_at, scheduled_for, started_at, ended_at, settings,"
    " recording_decisions, kind, recording_id"
)


def _row_to_record(row: tuple[Any, ...]) -> SessionRecord:
    raw = json.loads(row[8])
    settings = SessionSettings(
        recording=bool(raw.get("recording", True)),
        whisper_single=bool(raw.get("whisper_single", False)),
        prompts=tuple(raw.get("prompts", DEFAULT_PROMPTS)),
        tally_categories=tuple(raw.get("tally_categories", DEFAULT_TALLIES)),
    )
    return SessionRecord(
        id=row[0],
        title=row[1],
        teacher_name=row[2],
        state=SessionState(row[3]),
        created_at=row[4],
        scheduled_for=row[5],
        started_at=row[6],
        ended_at=row[7],
        settings=settings,
        recording_decisions=tuple(
            RecordingDecision.from_json(d) for d in json.loads(row[9] or "[]")
        ),
        kind=SessionKind(row[10] or SessionKind.LESSON),
        recording_id=row[11],
    )


def new_record(
    *,
    title: str,
    teacher_name: str,
    settings: SessionSettings,
    scheduled_for: float | None,
    kind: SessionKind,
    recording_id: str | None,
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
    )


class SqliteSessionStore:
    """SessionStore on one SQLite file (see ``SqliteWorker``)."""

    def __init__(self, db: SqliteWorker) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: Path) -> SqliteSessionStore:
        db = await SqliteWorker.open(path, _SCHEMA)
        await db.run(lambda conn: add_missing_columns(conn, "sessions", _ADDED_COLUMNS))
        return cls(db)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._db.run(fn)

    async def create(
        self,
        *,
        title: str,
        teacher_name: str,
        settings: SessionSettings,
        scheduled_for: float | None = None,
        kind: SessionKind = SessionKind.LESSON,
        recording_id: str | None = None,
    ) -> SessionRecord:
        record = new_record(
            title=title,
            teacher_name=teacher_name,
            settings=settings,
            scheduled_for=scheduled_for,
            kind=kind,
            recording_id=recording_id,
        )

        def _insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.title,
                    record.teacher_name,
                    record.state.value,
                    record.created_at,
                    record.scheduled_for,
                    None,
                    None,
                    json.dumps(settings.to_json()),
                    "[]",
                    str(kind),
                    recording_id,
                ),
            )

        await self._run(_insert)
        logger.info("session %s created: %r", record.id, record.title)
        return record

    async def get(self, session_id: str) -> SessionRecord:
        def _get(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            cur = conn.execute(f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", (session_id,))
            row: tuple[Any, ...] | None = cur.fetchone()
            return row

        row = await self._run(_get)
        if row is None:
            raise SessionNotFound(f"no session {session_id!r}")
        return _row_to_record(row)

    async def list(self, states: Iterable[SessionState] | None = None) -> list[SessionRecord]:
        wanted = None if states is None else [SessionState(s).value for s in states]

        def _list(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            sql = f"SELECT {_COLUMNS} FROM sessions"
            params: list[str] = []
            if wanted is not None:
                if not wanted:
                    return []
                sql += f" WHERE state IN ({', '.join('?' for _ in wanted)})"
                params = wanted
            sql += " ORDER BY created_at, id"
            return list(conn.execute(sql, params).fetchall())

        return [_row_to_record(row) for row in await self._run(_list)]

    async def set_state(self, session_id: str, state: SessionState, *, at: float) -> SessionRecord:
        state = SessionState(state)

        def _set(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            # BEGIN IMMEDIATE: read-check-write is atomic even with other
            # processes (e.g. the CLI) writing the same file.
            conn.execute("BEGIN IMMEDIATE")
            try:
                row: tuple[Any, ...] | None = conn.execute(
                    f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
                ).fetchone()
                if row is None:
                    conn.execute("ROLLBACK")
                    return None
                current = SessionState(row[3])
                if current == state:
                    conn.execute("ROLLBACK")
                    return row
                if state not in _TRANSITIONS[current]:
                    raise SidecoachError(
                        f"session {session_id!r} cannot go from {current} to {state}",
                        code="invalid_state",
                    )
                if state == SessionState.LIVE:
                    conn.execute(
                        "UPDATE sessions SET state = ?, started_at = ? WHERE id = ?",
                        (state.value, at, session_id),
                    )
                else:
                    conn.execute(
                        "UPDATE sessions SET state = ?, ended_at = ? WHERE id = ?",
                        (state.value, at, session_id),
                    )
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
                ).fetchone()
                conn.execute("COMMIT")
                return row
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        row = await self._run(_set)
        if row is None:
            raise SessionNotFound(f"no session {session_id!r}")
        record = _row_to_record(row)
        logger.info("session %s is %s", session_id, record.state)
        return record

    async def add_recording_decision(
        self, session_id: str, decision: RecordingDecision
    ) -> SessionRecord:
        def _add(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT recording_decisions FROM sessions WHERE id = ?", (session_id,)
                ).fetchone()
                if row is None:
                    conn.execute("ROLLBACK")
                    return None
                decisions = [*json.loads(row[0] or "[]"), decision.to_json()]
                conn.execute(
                    "UPDATE sessions SET recording_decisions = ? WHERE id = ?",
                    (json.dumps(decisions), session_id),
                )
                out: tuple[Any, ...] | None = conn.execute(
                    f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
                ).fetchone()
                conn.execute("COMMIT")
                return out
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        row = await self._run(_add)
        if row is None:
            raise SessionNotFound(f"no session {session_id!r}")
        logger.info(
            "session %s: recording %s by %s",
            session_id,
            "on" if decision.recording else "off",
            decision.by_role,
        )
        return _row_to_record(row)

    async def close(self) -> None:
        await self._db.close()


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


async def open_store(config: Config) -> SessionStore:
    """The session store for ``config``: SQLite in ``config.data_dir``
    (shared by the nodes of one box), or Redis (``SIDECOACH_STORE=redis``:
    nodes on several boxes; each keeps a mirror for Redis outages)."""
    if config.store == "redis" and config.redis_url:
        from server.cluster.redis_store import RedisSessionStore

        return await RedisSessionStore.open(config.redis_url, Path(config.data_dir))
    return await SqliteSessionStore.open(Path(config.data_dir) / DB_FILE_NAME)
