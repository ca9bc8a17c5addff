"""Shared playback in a debrief room: one driver plays, pauses, seeks and
sets the rate; everyone's player follows the state kept here.

The state is a position (seconds of the review video) at a server time
(``at``, ms on this process's monotonic clock, which pages learn to read
through ``time-sync``), whether it plays and at what rate. When anyone's
player is buffering, the group waits: the state holds still at where it
was until every player is ready again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.core.errors import Forbidden, InvalidMessage

#: slowest and fastest shared playback rate
MIN_RATE, MAX_RATE = 0.25, 4.0
#: longest review video position, seconds (a lesson is shorter)
MAX_POSITION_S = 24 * 3600.0


def server_ms() -> float:
    """The clock shared playback runs on (pages sync to it)."""
    return time.monotonic() * 1000


@dataclass
class Playback:
    now_ms: Callable[[], float] = server_ms
    playing: bool = False
    position: float = 0.0  # seconds, at ``at``
    rate: float = 1.0
    at: float = 0.0
    driver: str | None = None
    #: every change (pages ignore states older than the one they have)
    seq: int = 0
    #: every driver command (a hold for someone buffering is not one)
    commands: int = 0
    #: participants whose player is buffering: the group waits for them
    waiting: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.at = self.now_ms()

    @property
    def moving(self) -> bool:
        return self.playing and not self.waiting

    def position_now(self) -> float:
        if not self.moving:
            return self.position
        return self.position + (self.now_ms() - self.at) / 1000 * self.rate

    def _restamp(self) -> None:
        """Fix the position at now, so a change takes effect from now."""
        self.position, self.at = self.position_now(), self.now_ms()

    def _changed(self) -> None:
        self.seq += 1

    # -- the driver ---------------------------------------------------------------

    def drive(self, participant: str) -> None:
        """Anyone in the room takes the wheel with one click."""
        if self.driver != participant:
            self.driver = participant
            self._changed()

    def command(
        self, participant: str, action: str, position: float | None, rate: float | None
    ) -> None:
        if self.driver is None:
            self.driver = participant  # the first to touch the controls drives
        if participant != self.driver:
            raise Forbidden("only the driver controls the shared playback")
        self._restamp()
        if position is not None:
            if not 0 <= position <= MAX_POSITION_S:
                raise InvalidMessage("position is outside the video")
            self.position = position
        if action == "play":
            self.playing = True
        elif action == "pause":
            self.playing = False
        elif action == "rate":
            if rate is None or not MIN_RATE <= rate <= MAX_RATE:
                raise InvalidMessage(f"rate must be {MIN_RATE} to {MAX_RATE}")
            self.rate = rate
        elif action != "seek":
            raise InvalidMessage(f"unknown playback action {action!r}")
        self.commands += 1
        self._changed()

    # -- the members ----------------------------------------------------------------

    def buffering(self, participant: str, buffering: bool) -> bool:
        """A player stalled (or is ready again); returns whether that changed
        what everyone should do."""
        was_moving = self.moving
        if buffering:
            if participant in self.waiting:
                return False
            self._restamp()
            self.waiting.add(participant)
        else:
            if participant not in self.waiting:
                return False
            self._restamp()
            self.waiting.discard(participant)
            self.at = self.now_ms()
        if was_moving != self.moving:
            self._changed()
            return True
        return False

    def left(self, participant: str) -> bool:
        """A member left: nobody waits for them, and they no longer drive."""
        changed = self.buffering(participant, False)
        if self.driver == participant:
            self.driver = None
            self._changed()
            changed = True
        return changed

    def to_client(self, name_of: Callable[[str], str]) -> dict[str, Any]:
        now = self.now_ms()
        position = self.position
        if self.moving:
            position += (now - self.at) / 1000 * self.rate
        return {
            "seq": self.seq,
            "command": self.commands,
            "playing": self.playing,
            "moving": self.moving,
            "position": position,
            "at": now if self.moving else self.at,
            "rate": self.rate,
            "driver": self.driver,
            "driverName": name_of(self.driver) if self.driver else None,
            "waitingFor": sorted(name_of(p) for p in self.waiting),
        }
