"""The one relational database: SQLite in the data directory by default,
PostgreSQL when ``SIDECOACH_DATABASE_URL`` names one (several boxes share
it). SQLAlchemy 2 in asyncio mode (aiosqlite, asyncpg): database work never
blocks the event loop.

``Database.open`` brings the schema to the newest Alembic revision (the
migrations ship in ``migrations/``) under a lock, so nodes starting together
on one file or one server migrate once: SQLite takes its write lock
(``BEGIN IMMEDIATE``), PostgreSQL an advisory lock. Then it copies in, once,
what an earlier release kept in separate files (``legacy.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from server.core.errors import ConfigError, StoreClosed

logger = logging.getLogger(__name__)

#: the embedded database's file in the data directory
DB_FILE_NAME = "sidecoach.db"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: a statement waits this long for another process's SQLite lock
BUSY_TIMEOUT_S = 30.0
#: PostgreSQL advisory lock key held while migrating ("sidecoach" in ASCII)
MIGRATION_LOCK_KEY = 0x73696465636F6163
#: connections one node keeps to PostgreSQL (and may open beyond it)
PG_POOL_SIZE = 10
PG_MAX_OVERFLOW = 10


def database_url(data_dir: Path, configured: str = "") -> str:
    """The SQLAlchemy URL: the configured one (``postgresql://...`` becomes
    asyncpg's, ``sqlite:///...`` aiosqlite's) or the file in ``data_dir``."""
    if not configured:
        return f"sqlite+aiosqlite:///{(Path(data_dir) / DB_FILE_NAME).resolve()}"
    try:
        url = make_url(configured)
    except ArgumentError:
        raise ConfigError(
            "SIDECOACH_DATABASE_URL is not a database URL: expected "
            "postgresql://user:password@host:port/name"
        ) from None
    driver = {
        "postgresql": "postgresql+asyncpg",
        "postgres": "postgresql+asyncpg",
        "sqlite": "sqlite+aiosqlite",
    }.get(url.drivername, url.drivername)
    if driver not in ("postgresql+asyncpg", "sqlite+aiosqlite"):
        raise ConfigError(
            f"SIDECOACH_DATABASE_URL uses {url.drivername!r}: expected postgresql:// "
            "(or sqlite:///path)"
        )
    return url.set(drivername=driver).render_as_string(hide_password=False)


def safe_url(url: str) -> str:
    """The URL as it may be logged (no password)."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is off: SQLAlchemy's "begin"
    # event emits BEGIN, so DDL is transactional and locks are ours
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            # SQLite ignores the busy timeout while another process creates
            # the same file: retry until the timeout has passed
            cur.execute("PRAGMA journal_mode=WAL")
            break
        except Exception as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _alembic_config(conn: Connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config(None)).get_current_head()  # type: ignore[arg-type]
    assert head is not None
    return head


def _upgrade(conn: Connection) -> str | None:
    before = MigrationContext.configure(conn).get_current_revision()
    command.upgrade(_alembic_config(conn), "head")
    return before


class Database:
    """One engine and its session maker; made by ``open``, closed by ``close``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        # SQLite: a transaction that reads and then writes must hold the
        # write lock from its BEGIN, or another process's commit between its
        # read and its write fails it at once ("database is locked")
        self.writers = async_sessionmaker(
            engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )
        self._closed = False

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @classmethod
    async def open(cls, url: str) -> Database:
        """Connect and migrate to the newest revision."""
        # aiosqlite logs every statement with its parameters at DEBUG: login
        # and CSRF tokens, password hashes. Never below INFO.
        quiet = logging.getLogger("aiosqlite")
        quiet.setLevel(max(quiet.getEffectiveLevel(), logging.INFO))
        # Alembic's plugin and context lines at every start: ours says what changed
        alembic_log = logging.getLogger("alembic")
        alembic_log.setLevel(max(alembic_log.getEffectiveLevel(), logging.WARNING))
        if url.startswith("sqlite"):
            path = Path(make_url(url).database or "")
            path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(engine.sync_engine, "begin", _sqlite_begin)
        else:
            engine = create_async_engine(
                url, pool_size=PG_POOL_SIZE, max_overflow=PG_MAX_OVERFLOW, pool_pre_ping=True
            )
        db = cls(engine)
        try:
            await db.migrate()
        except OSError as exc:
            await engine.dispose()
            raise ConfigError(f"cannot reach the database {safe_url(url)}: {exc}") from None
        except OperationalError as exc:
            await engine.dispose()
            raise ConfigError(f"the database {safe_url(url)} refused: {exc.orig}") from None
        except BaseException:
            await engine.dispose()
            raise
        return db

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[Any]:
        """A connection in a transaction that holds the deployment-wide
        write lock (migrations, the legacy import)."""
        async with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn = await conn.execution_options(sqlite_immediate=True)
            async with conn.begin():
                if self.dialect == "postgresql":
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY}
                    )
                yield conn

    async def migrate(self) -> None:
        async with self.locked() as conn:
            before = await conn.run_sync(_upgrade)
        head = head_revision()
        if before != head:
            logger.info("database migrated from %s to %s", before or "nothing", head)

    def session(self, *, writes: bool = False) -> AsyncSession:
        """``async with db.session() as s, s.begin(): ...``; ``writes``: the
        transaction reads rows and then changes them (FOR UPDATE)."""
        if self._closed:
            raise StoreClosed("the database is closed")
        return self.writers() if writes else self.sessions()

    async def close(self) -> None:
        self._closed = True
        await self.engine.dispose()
