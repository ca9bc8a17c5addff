"""A debrief room: members see and hear each other (the Router, by the
access policy's member route) and watch one recording together. This holds
what a lesson does not have: the shared playback and the comments that land
on the recording's timeline live."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from server.access.policy import AccessPolicy, Reader, Visibility
from server.live.debrief.playback import Playback

logger = logging.getLogger(__name__)


class SharedComment(Protocol):
    """A review comment (``server.recording.comments.Comment``)."""

    @property
    def author_invite(self) -> str | None: ...

    @property
    def visibility(self) -> str: ...

    def to_client(self, *, mine: bool) -> dict[str, Any]: ...


class Member(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def reader(self) -> Reader: ...


class DebriefHost(Protocol):
    """What the room needs from its session."""

    def members_now(self) -> Sequence[Member]: ...

    def name_of(self, participant_id: str) -> str: ...

    def log_event(self, event_type: str, **data: Any) -> dict[str, Any]: ...

    async def send(self, participant_ids: list[str], event: str, payload: dict[str, Any]) -> None:
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...


class DebriefRoom:
    def __init__(
        self,
        recording_id: str,
        host: DebriefHost,
        policy: AccessPolicy,
        now_ms: Callable[[], float] | None = None,
    ) -> None:
        self.recording_id = recording_id
        self._host = host
        self._policy = policy
        self.playback = Playback(now_ms) if now_ms is not None else Playback()

    def state(self) -> dict[str, Any]:
        return {
            "recordingId": self.recording_id,
            "playback": self.playback.to_client(self._host.name_of),
        }

    async def _tell_everyone(self) -> None:
        ids = [m.id for m in self._host.members_now()]
        await self._host.send(ids, "playback-state", self.playback.to_client(self._host.name_of))

    # -- playback ------------------------------------------------------------------

    async def command(
        self, participant: str, action: str, position: float | None, rate: float | None
    ) -> dict[str, Any]:
        self.playback.command(participant, action, position, rate)
        self._host.log_event(
            "playback",
            action=action,
            by=participant,
            position=round(self.playback.position, 3),
            rate=self.playback.rate,
        )
        await self._tell_everyone()
        return self.playback.to_client(self._host.name_of)

    async def drive(self, participant: str) -> dict[str, Any]:
        self.playback.drive(participant)
        self._host.log_event("playback-driver", participant=participant)
        await self._tell_everyone()
        return self.playback.to_client(self._host.name_of)

    async def buffering(self, participant: str, buffering: bool) -> dict[str, Any]:
        if self.playback.buffering(participant, buffering):
            await self._tell_everyone()
        return self.playback.to_client(self._host.name_of)

    def left(self, participant: str) -> None:
        if self.playback.left(participant):
            self._host.spawn(self._tell_everyone())

    # -- comments -------------------------------------------------------------------

    async def comment_added(self, comment: SharedComment) -> None:
        """A comment on the watched recording: every member who may read it
        sees it on the timeline at once."""
        visibility = Visibility(comment.visibility)
        for member in self._host.members_now():
            reader = member.reader
            if self._policy.can_read_authored(
                reader, author_invite=comment.author_invite, visibility=visibility
            ):
                mine = comment.author_invite is not None and comment.author_invite == (
                    reader.invite_id
                )
                await self._host.send([member.id], "comment", comment.to_client(mine=mine))
