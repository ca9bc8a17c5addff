"""Review comments: time-stamped text on a recording's timeline, threaded
(a reply belongs to its thread's first comment), optionally tagged with one
of the lesson's tally categories or prompts, in SQLite
(``DATA_DIR/comments.sqlite3``). Who reads one is the access policy's
(its author always; others by its visibility); this store only keeps them.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.core.errors import LimitReached
from server.storage.sqlite_worker import SqliteWorker

COMMENTS_FILE = "comments.sqlite3"
#: a comment's text, at most this many characters
MAX_COMMENT_CHARS = 2000
#: a tag, at most this many characters
MAX_TAG_CHARS = 80
#: comments one recording may hold
MAX_COMMENTS_PER_RECORDING = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS comments (
    id TEXT PRIMARY KEY,
    recording_id TEXT NOT NULL,
    parent_id TEXT,
    t_ms INTEGER NOT NULL,
    text TEXT NOT NULL,
    tag TEXT,
    visibility TEXT NOT NULL,
    author_invite TEXT,
    author_name TEXT NOT NULL,
    author_role TEXT NOT NULL,
    created_at REAL NOT NULL,
    from_note TEXT
);
CREATE INDEX IF NOT EXISTS comments_recording ON comments(recording_id, t_ms);
"""
_COLUMNS = (
    "id, recording_id, parent_id, t_ms, text, tag, visibility, author_invite, author_name,"
    " author_role, created_at, from_note"
)


@dataclass(frozen=True)
class Comment:
    id: str
    recording_id: str
    parent_id: str | None
    t_ms: int
    text: str
    tag: str | None
    visibility: str
    author_invite: str | None
    author_name: str
    author_role: str
    created_at: float
    from_note: str | None = None

    def to_client(self, *, mine: bool) -> dict[str, Any]:
        """As pages see it: no invite ids, ``mine`` for the reader's own."""
        return {
            "id": self.id,
            "recording": self.recording_id,
            "parent": self.parent_id,
            "t": self.t_ms,
            "text": self.text,
            "tag": self.tag,
            "visibility": self.visibility,
            "name": self.author_name,
            "role": self.author_role,
            "created_at": self.created_at,
            "from_note": self.from_note,
            "mine": mine,
        }


def _row(r: tuple[Any, ...]) -> Comment:
    return Comment(*r)


class TooManyComments(LimitReached):
    pass


class CommentStore:
    """Made when the app is built, opened on its start-up (``start``)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._worker: SqliteWorker | None = None

    @classmethod
    def in_dir(cls, data_dir: Path) -> CommentStore:
        return cls(data_dir / COMMENTS_FILE)

    async def start(self) -> None:
        if self._worker is None:
            self._worker = await SqliteWorker.open(self._path, _SCHEMA)

    @property
    def _db(self) -> SqliteWorker:
        if self._worker is None:
            raise RuntimeError("the comment store is not open yet")
        return self._worker

    async def add(
        self,
        *,
        recording_id: str,
        t_ms: int,
        text: str,
        visibility: str,
        author_invite: str | None,
        author_name: str,
        author_role: str,
        parent_id: str | None = None,
        tag: str | None = None,
        from_note: str | None = None,
    ) -> Comment:
        comment = Comment(
            id="m-" + secrets.token_hex(6),
            recording_id=recording_id,
            parent_id=parent_id,
            t_ms=t_ms,
            text=text,
            tag=tag,
            visibility=visibility,
            author_invite=author_invite,
            author_name=author_name,
            author_role=author_role,
            created_at=time.time(),
            from_note=from_note,
        )

        def insert(conn: sqlite3.Connection) -> None:
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM comments WHERE recording_id = ?", (recording_id,)
            ).fetchone()
            if count >= MAX_COMMENTS_PER_RECORDING:
                raise TooManyComments(f"a recording holds at most {MAX_COMMENTS_PER_RECORDING}")
            conn.execute(
                f"INSERT INTO comments ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    comment.id,
                    comment.recording_id,
                    comment.parent_id,
                    comment.t_ms,
                    comment.text,
                    comment.tag,
                    comment.visibility,
                    comment.author_invite,
                    comment.author_name,
                    comment.author_role,
                    comment.created_at,
                    comment.from_note,
                ),
            )

        await self._db.run(insert)
        return comment

    async def get(self, comment_id: str) -> Comment | None:
        def select(conn: sqlite3.Connection) -> Comment | None:
            r = conn.execute(f"SELECT {_COLUMNS} FROM comments WHERE id = ?", (comment_id,))
            row = r.fetchone()
            return _row(row) if row else None

        return await self._db.run(select)

    async def for_recording(self, recording_id: str) -> list[Comment]:
        def select(conn: sqlite3.Connection) -> list[Comment]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM comments WHERE recording_id = ?"
                " ORDER BY t_ms, created_at",
                (recording_id,),
            )
            return [_row(r) for r in rows.fetchall()]

        return await self._db.run(select)

    async def delete_recording(self, recording_id: str) -> None:
        """The recording is gone: so are its comments."""
        await self._db.run(
            lambda c: c.execute("DELETE FROM comments WHERE recording_id = ?", (recording_id,))
        )

    async def close(self) -> None:
        if self._worker is not None:
            await self._worker.close()
