"""Review comments: time-stamped text on a recording's timeline, threaded
(a reply belongs to its thread's first comment), optionally tagged with one
of the lesson's tally categories or prompts, in the one database (the
``comments`` table). Who reads one is the access policy's
(its author always; others by its visibility); this store only keeps them.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import delete, func, select

from server.core.errors import LimitReached
from server.storage.database import Database
from server.storage.models import Comment as CommentRow

#: a comment's text, at most this many characters
MAX_COMMENT_CHARS = 2000
#: a tag, at most this many characters
MAX_TAG_CHARS = 80
#: comments one recording may hold
MAX_COMMENTS_PER_RECORDING = 5000

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


def _row(r: CommentRow) -> Comment:
    return Comment(**{f.name: getattr(r, f.name) for f in fields(Comment)})


class TooManyComments(LimitReached):
    pass


class CommentStore:
    """Comments on the one database (shared by every node of a deployment)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(self) -> None:
        """Nothing to open: the database is the caller's."""

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
        count = select(func.count()).where(CommentRow.recording_id == recording_id)
        async with self._db.session() as s, s.begin():
            if (await s.execute(count)).scalar_one() >= MAX_COMMENTS_PER_RECORDING:
                raise TooManyComments(f"a recording holds at most {MAX_COMMENTS_PER_RECORDING}")
            s.add(CommentRow(**{f.name: getattr(comment, f.name) for f in fields(Comment)}))
        return comment

    async def get(self, comment_id: str) -> Comment | None:
        async with self._db.session() as s:
            row = await s.get(CommentRow, comment_id)
        return _row(row) if row is not None else None

    async def for_recording(self, recording_id: str) -> list[Comment]:
        query = (
            select(CommentRow)
            .where(CommentRow.recording_id == recording_id)
            .order_by(CommentRow.t_ms, CommentRow.created_at)
        )
        async with self._db.session() as s:
            return [_row(r) for r in (await s.execute(query)).scalars().all()]

    async def delete_recording(self, recording_id: str) -> None:
        """The recording is gone: so are its comments."""
        async with self._db.session() as s, s.begin():
            await s.execute(delete(CommentRow).where(CommentRow.recording_id == recording_id))

    async def close(self) -> None:
        """The database is the caller's."""
