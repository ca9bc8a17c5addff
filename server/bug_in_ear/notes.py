"""Notes: a coach's time-stamped notes on the lesson. Private to their
author (the invite they came in with) unless the author shares them with
the coaching team or with everyone; who receives and reads them is the
access policy's."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from server.access.policy import Visibility
from server.bug_in_ear.errors import EmptyNote, UnknownNote
from server.bug_in_ear.room import Room
from server.core.errors import Forbidden

#: a note's text, at most this many characters
MAX_NOTE_CHARS = 2000


@dataclass
class Note:
    id: str
    t: int
    by: str  # participant id when written
    author: str  # invite id: the author across rejoins
    name: str
    text: str
    visibility: Visibility

    def to_client(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "t": self.t,
            "by": self.by,
            "name": self.name,
            "text": self.text,
            "visibility": str(self.visibility),
        }


class Notes:
    def __init__(self, room: Room) -> None:
        self._room = room
        self.notes: dict[str, Note] = {}
        self._ids = itertools.count(1)

    async def add(
        self, coach: str, text: str, visibility: Visibility = Visibility.PRIVATE
    ) -> dict[str, Any]:
        body = text.strip()[:MAX_NOTE_CHARS]
        if not body:
            raise EmptyNote("a note needs some text")
        note_id = f"n{next(self._ids)}"
        author = self._room.invite_of(coach)
        name = self._room.name_of(coach)
        event = self._room.log_event(
            "note",
            note=note_id,
            by=coach,
            author=author,
            name=name,
            text=body,
            visibility=str(visibility),
        )
        note = Note(note_id, event["t"], coach, author, name, body, Visibility(visibility))
        self.notes[note_id] = note
        await self._send(note)
        return note.to_client()

    async def share(self, coach: str, note_id: str, visibility: Visibility) -> dict[str, Any]:
        """The author widens (or narrows) who may see a note."""
        note = self.notes.get(note_id)
        if note is None:
            raise UnknownNote(f"no note {note_id}")
        if note.author != self._room.invite_of(coach):
            raise Forbidden("only its author can share a note")
        note.visibility = Visibility(visibility)
        self._room.log_event(
            "note-shared", note=note_id, by=coach, author=note.author, visibility=str(visibility)
        )
        await self._send(note)
        return note.to_client()

    async def _send(self, note: Note) -> None:
        audience = self._room.note_audience(note.author, note.visibility)
        await self._room.send(audience, "note", note.to_client())

    def visible_to(self, participant_id: str) -> list[dict[str, Any]]:
        """The notes a (re)joining participant's page shows live (``mine``:
        written with the same invite)."""
        invite = self._room.invite_of(participant_id)
        return [
            {**n.to_client(), "mine": n.author == invite}
            for n in self.notes.values()
            if participant_id in self._room.note_audience(n.author, n.visibility)
        ]
