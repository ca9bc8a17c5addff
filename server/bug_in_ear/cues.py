"""Cues: short silent prompts for the teacher's screen, with delivery and
acknowledgement. A cue sent while no teacher is connected waits, and is
delivered when a teacher (re)joins."""

from __future__ import annotations

import itertools
import logging
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from server.access.policy import Item
from server.bug_in_ear.errors import UnknownCue
from server.bug_in_ear.room import Room

logger = logging.getLogger(__name__)

#: a cue's text, at most this many characters
MAX_CUE_CHARS = 80
#: how long the teacher's client has to acknowledge receipt
DELIVERY_TIMEOUT_S = 5.0


class CueState(StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"


@dataclass
class Cue:
    id: str
    by: str
    by_name: str
    text: str
    icon: str | None
    color: str | None
    tone: bool
    sent_ms: int
    state: CueState = CueState.SENT
    delivered_ms: int | None = None
    acknowledged_ms: int | None = None

    def to_client(self) -> dict[str, Any]:
        d = asdict(self)
        d["state"] = str(self.state)
        return d


class CueBook:
    def __init__(self, room: Room, prompts: tuple[str, ...]) -> None:
        self._room = room
        self.prompts = list(prompts)
        self.cues: dict[str, Cue] = {}
        self._ids = itertools.count(1)

    def text_for(self, text: str | None, prompt_index: int | None) -> str:
        if prompt_index is not None:
            if not 0 <= prompt_index < len(self.prompts):
                raise UnknownCue(f"no prompt number {prompt_index}")
            return self.prompts[prompt_index]
        if not text or not text.strip():
            raise UnknownCue("a cue needs text or a prompt")
        return text.strip()[:MAX_CUE_CHARS]

    async def send(
        self,
        coach: str,
        *,
        text: str | None,
        prompt_index: int | None,
        icon: str | None,
        color: str | None,
        tone: bool,
        category: str | None = None,
    ) -> Cue:
        body = self.text_for(text, prompt_index)
        cue_id = f"q{next(self._ids)}"
        name = self._room.name_of(coach)
        event = self._room.log_event(
            "cue",
            cue=cue_id,
            by=coach,
            by_name=name,
            text=body,
            icon=icon,
            color=color,
            tone=tone,
            prompt=prompt_index,
            category=category,
        )
        cue = Cue(cue_id, coach, name, body, icon, color, tone, event["t"])
        self.cues[cue.id] = cue
        for teacher in self._room.audience(Item.CUE):
            self._room.spawn(self._deliver(cue, teacher))
        return cue

    async def _deliver(self, cue: Cue, teacher: str) -> None:
        ok = await self._room.deliver(teacher, "cue", cue.to_client(), DELIVERY_TIMEOUT_S)
        if ok and cue.state == CueState.SENT:
            cue.state = CueState.DELIVERED
            cue.delivered_ms = self._room.log_event("cue-delivered", cue=cue.id, to=teacher)["t"]
            await self._tell_coaches(cue)

    def redeliver(self, teacher: str) -> None:
        """Someone who receives cues (the teacher) (re)joined: hand over what
        has not been delivered."""
        for cue in self.cues.values():
            if cue.state == CueState.SENT:
                self._room.spawn(self._deliver(cue, teacher))

    async def acknowledge(self, teacher: str, cue_id: str) -> Cue:
        cue = self.cues.get(cue_id)
        if cue is None:
            raise UnknownCue(f"no cue {cue_id}")
        if cue.state != CueState.ACKNOWLEDGED:
            now = self._room.log_event("cue-ack", cue=cue.id, by=teacher)["t"]
            if cue.delivered_ms is None:
                cue.delivered_ms = now
            cue.state = CueState.ACKNOWLEDGED
            cue.acknowledged_ms = now
            await self._tell_coaches(cue)
        return cue

    async def _tell_coaches(self, cue: Cue) -> None:
        await self._room.send(self._room.audience(Item.CUE_STATE), "cue-state", cue.to_client())
