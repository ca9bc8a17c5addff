"""The tables of the one relational database (SQLAlchemy 2 models), for
SQLite (embedded, ``DATA_DIR/sidecoach.db``) and PostgreSQL (several boxes).
The schema is made and changed by the Alembic migrations beside this module
(``migrations/versions``), never by ``create_all``; a test checks that the
migrations and these models agree.

Times are unix seconds (floats), as everywhere else in Sidecoach; JSON
fields are text. Ids are short random strings minted by their modules.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: constraint names the same on SQLite and PostgreSQL (Alembic needs names)
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = 32  # characters of an id column
NAME = 120
EMAIL = 254


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class School(Base):
    __tablename__ = "schools"
    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    created_at: Mapped[float] = mapped_column(Float)


class Person(Base):
    """Someone with an account: signed in through the district's OpenID
    Connect provider (``oidc_issuer`` + ``oidc_sub``) or a local password."""

    __tablename__ = "persons"
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_sub", name="uq_persons_oidc"),)
    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    #: lower case; unique where set
    email: Mapped[str | None] = mapped_column(String(EMAIL), unique=True)
    oidc_issuer: Mapped[str | None] = mapped_column(String(255))
    oidc_sub: Mapped[str | None] = mapped_column(String(255))
    #: argon2 hash of a local password (None: sign-in through OIDC only)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    #: an admin set the password: it must be changed at the next sign-in
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[float | None] = mapped_column(Float)
    disabled_at: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)


class RoleGrant(Base):
    """One role a person holds, in one school (None: the whole district,
    for a district admin)."""

    __tablename__ = "role_grants"
    __table_args__ = (
        UniqueConstraint("person_id", "role", "school_id", name="uq_role_grants_grant"),
        Index("ix_role_grants_school_role", "school_id", "role"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(20))
    school_id: Mapped[str | None] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))


class CaseloadEntry(Base):
    """A teacher in a coach's caseload."""

    __tablename__ = "caseloads"
    coach_id: Mapped[str] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True
    )
    teacher_id: Mapped[str] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[float] = mapped_column(Float)


class Group(Base):
    """A coaching group (a PLC)."""

    __tablename__ = "groups"
    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    school_id: Mapped[str | None] = mapped_column(ForeignKey("schools.id", ondelete="SET NULL"))
    created_by: Mapped[str | None] = mapped_column(String(ID))
    created_at: Mapped[float] = mapped_column(Float)


class GroupMember(Base):
    __tablename__ = "group_members"
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    person_id: Mapped[str] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Lesson(Base):
    """One coached lesson or debrief (a ``SessionRecord``), and the people
    it belongs to (None for lessons made with the admin token or by an
    earlier release)."""

    __tablename__ = "lessons"
    __table_args__ = (
        Index("ix_lessons_teacher_when", "teacher_id", "scheduled_for"),
        Index("ix_lessons_coach_when", "coach_id", "scheduled_for"),
        Index("ix_lessons_school_created", "school_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    title: Mapped[str] = mapped_column(String(NAME))
    teacher_name: Mapped[str] = mapped_column(String(NAME))
    state: Mapped[str] = mapped_column(String(12), index=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    scheduled_for: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    settings: Mapped[str] = mapped_column(Text)
    recording_decisions: Mapped[str] = mapped_column(Text, default="[]")
    kind: Mapped[str] = mapped_column(String(12), default="lesson")
    recording_id: Mapped[str | None] = mapped_column(String(64))
    teacher_id: Mapped[str | None] = mapped_column(
        ForeignKey("persons.id", ondelete="SET NULL")
    )
    #: the coach who scheduled it
    coach_id: Mapped[str | None] = mapped_column(ForeignKey("persons.id", ondelete="SET NULL"))
    school_id: Mapped[str | None] = mapped_column(ForeignKey("schools.id", ondelete="SET NULL"))
    #: a debrief started for a coaching group
    group_id: Mapped[str | None] = mapped_column(
        ForeignKey("groups.id", ondelete="SET NULL"), index=True
    )


class LessonShare(Base):
    """A person a lesson was opened to beyond the policy's defaults: a coach
    the teacher invited (``coach``), or someone the teacher shared the
    recording with (``viewer``)."""

    __tablename__ = "lesson_shares"
    lesson_id: Mapped[str] = mapped_column(
        ForeignKey("lessons.id", ondelete="CASCADE"), primary_key=True
    )
    person_id: Mapped[str] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(20))
    granted_by: Mapped[str] = mapped_column(String(ID))
    granted_at: Mapped[float] = mapped_column(Float)


class Recording(Base):
    """The recordings catalog: which recordings exist, for which session, in
    what state, written by which node (``series``/``part``: a session that
    moved between nodes)."""

    __tablename__ = "recordings"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(ID), index=True)
    directory: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), index=True)
    started_at: Mapped[float] = mapped_column(Float, index=True)
    ended_at: Mapped[float | None] = mapped_column(Float)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(Integer, default=0)
    deleted_at: Mapped[float | None] = mapped_column(Float)
    deleted_by: Mapped[str | None] = mapped_column(String(NAME))
    node: Mapped[str] = mapped_column(String(NAME), default="")
    series: Mapped[str | None] = mapped_column(String(64))
    part: Mapped[int] = mapped_column(Integer, default=1)


class Comment(Base):
    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_recording_t", "recording_id", "t_ms"),)
    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    recording_id: Mapped[str] = mapped_column(String(64))
    parent_id: Mapped[str | None] = mapped_column(String(ID))
    t_ms: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    tag: Mapped[str | None] = mapped_column(String(NAME))
    visibility: Mapped[str] = mapped_column(String(12))
    author_invite: Mapped[str | None] = mapped_column(String(64))
    author_name: Mapped[str] = mapped_column(String(NAME))
    author_role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[float] = mapped_column(Float)
    from_note: Mapped[str | None] = mapped_column(String(64))


class AuditEntry(Base):
    """One line of the append-only audit log: reads of recorded data,
    deletions, and every account-level decision."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    action: Mapped[str] = mapped_column(String(40), index=True)
    recording: Mapped[str | None] = mapped_column(String(64), index=True)
    session: Mapped[str | None] = mapped_column(String(ID), index=True)
    person_id: Mapped[str | None] = mapped_column(String(ID), index=True)
    #: the whole entry as JSON
    entry: Mapped[str] = mapped_column(Text)


class LoginSession(Base):
    """A signed-in browser: the cookie holds a random token, the database
    only its SHA-256."""

    __tablename__ = "login_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), index=True
    )
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    last_seen_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)


class CalendarToken(Base):
    """The secret of a person's iCalendar feed (its SHA-256)."""

    __tablename__ = "calendar_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)


class AllowedDomain(Base):
    """An e-mail domain whose people get an account at their first OIDC
    sign-in (as teachers of ``school_id``, when set)."""

    __tablename__ = "allowed_domains"
    domain: Mapped[str] = mapped_column(String(253), primary_key=True)
    school_id: Mapped[str | None] = mapped_column(ForeignKey("schools.id", ondelete="SET NULL"))
    created_at: Mapped[float] = mapped_column(Float)


class OidcState(Base):
    """An OIDC sign-in under way: consumed (deleted) by its callback, so a
    replayed ``state`` finds nothing."""

    __tablename__ = "oidc_states"
    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    next_url: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[float] = mapped_column(Float, index=True)


class LegacyImport(Base):
    """A file of an earlier release that was copied in (once)."""

    __tablename__ = "legacy_imports"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[float] = mapped_column(Float)
    rows: Mapped[int] = mapped_column(Integer)
