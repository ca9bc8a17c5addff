"""Tallies: one tap per observed practice, shared by the session's coaches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.access.policy import Item
from server.bug_in_ear.errors import NothingToUndo, UnknownCategory
from server.bug_in_ear.room import Room


@dataclass(frozen=True)
class Tap:
    id: int
    by: str
    category: str
    t: int


class Tallies:
    def __init__(self, room: Room, categories: tuple[str, ...]) -> None:
        self._room = room
        self.categories = list(categories)
        self.taps: list[Tap] = []
        self._next_id = 1

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.categories, 0)
        for tap in self.taps:
            counts[tap.category] = counts.get(tap.category, 0) + 1
        return counts

    def category_of(self, category: str | None) -> str | None:
        """A cue's tally category, checked (None: the cue names none)."""
        if category is not None and category not in self.categories:
            raise UnknownCategory(f"no tally category {category!r}")
        return category

    async def tap(self, coach: str, category: str) -> Tap:
        if category not in self.categories:
            raise UnknownCategory(f"no tally category {category!r}")
        event = self._room.log_event("tally", by=coach, category=category, tap=self._next_id)
        tap = Tap(self._next_id, coach, category, event["t"])
        self._next_id += 1
        self.taps.append(tap)
        await self._broadcast({"category": category, "by": coach, "t": tap.t, "undo": False})
        return tap

    async def undo(self, coach: str) -> Tap:
        """Take back this coach's last tap."""
        for i in range(len(self.taps) - 1, -1, -1):
            if self.taps[i].by == coach:
                tap = self.taps.pop(i)
                event = self._room.log_event(
                    "tally-undo", by=coach, category=tap.category, tap=tap.id
                )
                await self._broadcast(
                    {"category": tap.category, "by": coach, "t": event["t"], "undo": True}
                )
                return tap
        raise NothingToUndo("no tally of yours to undo")

    async def _broadcast(self, last: dict[str, Any]) -> None:
        await self._room.send(
            self._room.audience(Item.TALLY), "tally-counts", {"counts": self.counts(), "last": last}
        )
