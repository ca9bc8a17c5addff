"""Schema upgrades when several processes open the same SQLite file at once
(``--workers``, nodes sharing a data dir)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from server.storage.sqlite_worker import add_missing_columns


def test_a_column_another_process_added_first_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE recordings (id TEXT)")
    this = sqlite3.connect(path, isolation_level=None)

    class RacedConnection:
        """``this``, where the other process adds ``node`` right after
        this one has read the table's columns (seen in CI: two nodes
        starting on one data dir, 'duplicate column name: node')."""

        def execute(self, sql: str, *args: Any) -> Any:
            result = this.execute(sql, *args)
            if sql.startswith("PRAGMA table_info"):
                rows = list(result)
                other.execute("ALTER TABLE recordings ADD COLUMN node TEXT")
                return rows
            return result

    columns = (("node", "TEXT"), ("deleted_at", "REAL"))
    add_missing_columns(RacedConnection(), "recordings", columns)  # type: ignore[arg-type]
    names = [row[1] for row in this.execute("PRAGMA table_info(recordings)")]
    assert names == ["id", "node", "deleted_at"]
    # any other failure still stops the start-up
    with pytest.raises(sqlite3.OperationalError):
        add_missing_columns(this, "recordings", (("broken", "TEXT REFERENCES ("),))
    other.close()
    this.close()
