"""One SQLite connection used only from its own worker thread, so the event
loop never blocks on the database."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from server.core.errors import StoreClosed

logger = logging.getLogger(__name__)
T = TypeVar("T")


#: how long a statement waits for another process's lock before failing
BUSY_TIMEOUT_S = 5.0


def _wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. SQLite does not use the busy timeout while another
    process is creating the same file, so retry (in this worker thread)
    until ``BUSY_TIMEOUT_S`` has passed."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class SqliteWorker:
    def __init__(self, executor: ThreadPoolExecutor, conn: sqlite3.Connection) -> None:
        self._executor = executor
        self._conn = conn
        self._closed = False

    @classmethod
    async def open(cls, path: Path, schema: str) -> SqliteWorker:
        path = Path(path)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{path.stem}")

        def _open() -> sqlite3.Connection:
            path.parent.mkdir(parents=True, exist_ok=True)
            # several worker processes (--workers) open the same files at
            # once: wait for each other's locks from the first statement on
            conn = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S
            )
            try:
                _wal(conn)
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(schema)
            except BaseException:
                conn.close()
                raise
            return conn

        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, _open)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        logger.debug("opened %s", path)
        return cls(executor, conn)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreClosed("database is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, self._conn)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)


def add_missing_columns(
    conn: sqlite3.Connection, table: str, columns: tuple[tuple[str, str], ...]
) -> None:
    """Bring a table made by an older release up to date. Several processes
    (``--workers``, nodes sharing a data dir) may do it at once: a column
    another one added first is fine."""
    have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    for name, definition in columns:
        if name not in have:
            try:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):
                    raise
