"""What the bug-in-ear features need from a live session (implemented by
``server.live.session.Session``; bug_in_ear never imports sessions)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Protocol

from server.access.policy import Item, Visibility


class Room(Protocol):
    def now_ms(self) -> int:
        """The session clock now."""
        ...

    def log_event(self, event_type: str, **data: Any) -> dict[str, Any]:
        """Append to the session's event log, on the session clock."""
        ...

    def audience(self, item: Item) -> list[str]:
        """Participant ids that receive ``item`` live (the access policy)."""
        ...

    def note_audience(self, author_invite: str, visibility: Visibility) -> list[str]:
        """Participant ids that are sent a note of this author and visibility."""
        ...

    def invite_of(self, participant_id: str) -> str:
        """The invite id a participant joined with."""
        ...

    def name_of(self, participant_id: str) -> str: ...

    async def send(self, participant_ids: list[str], event: str, payload: dict[str, Any]) -> None:
        """Fire-and-forget message to some participants."""
        ...

    async def deliver(
        self, participant_id: str, event: str, payload: dict[str, Any], timeout_s: float
    ) -> bool:
        """Send and wait for the client's acknowledgement; False if none came."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run in the background, owned (and cancelled) by the session."""
        ...
