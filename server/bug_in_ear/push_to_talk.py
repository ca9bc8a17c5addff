"""Push-to-talk for whispers, enforced by the server: a coach's whisper
Producer is gated (paused) unless that coach is holding the talk button."""

from __future__ import annotations

import logging
from typing import Any

from server.access.policy import Item
from server.bug_in_ear.errors import NoWhisperTrack, WhisperBusy
from server.bug_in_ear.room import Room
from server.media.policy import Source
from server.media.producer import Producer

logger = logging.getLogger(__name__)


def is_push_to_talk(source: Source) -> bool:
    """Whisper producers forward only while their coach holds the button
    (who hears a whisper is the access policy's: the teacher and the Recorder)."""
    return source == Source.WHISPER


class PushToTalk:
    def __init__(self, room: Room, *, single_whisper: bool) -> None:
        self._room = room
        self._single = single_whisper
        self._tracks: dict[str, Producer] = {}  # coach participant id -> whisper producer
        self._talking: dict[str, int] = {}  # coach participant id -> start (session ms)

    def add_track(self, producer: Producer) -> None:
        self._tracks[producer.info.participant_id] = producer
        producer.on_close(self._track_closed)

    def _track_closed(self, producer: Producer) -> None:
        coach = producer.info.participant_id
        if self._tracks.get(coach) is producer:
            del self._tracks[coach]
            if coach in self._talking:
                self._room.spawn(self.stop(coach, reason="track closed"))

    @property
    def talking(self) -> list[str]:
        return list(self._talking)

    def state(self) -> dict[str, Any]:
        return {
            "whispering": [
                {"participantId": pid, "name": self._room.name_of(pid)} for pid in self._talking
            ]
        }

    async def start(self, coach: str) -> None:
        producer = self._tracks.get(coach)
        if producer is None or producer.closed:
            raise NoWhisperTrack("publish a whisper track first")
        if coach in self._talking:
            return
        if self._single and self._talking:
            raise WhisperBusy("another coach is whispering")
        event = self._room.log_event("whisper-start", participant=coach, producer=producer.id)
        self._talking[coach] = event["t"]
        producer.resume()
        await self._announce()

    async def stop(self, coach: str, *, reason: str = "released") -> None:
        started = self._talking.pop(coach, None)
        if started is None:
            return
        producer = self._tracks.get(coach)
        if producer is not None:
            producer.pause()
        self._room.log_event(
            "whisper-stop",
            participant=coach,
            producer=producer.id if producer is not None else None,
            reason=reason,
            started=started,
            duration_ms=self._room.now_ms() - started,
        )
        await self._announce()

    async def _announce(self) -> None:
        audience = self._room.audience(Item.WHISPER_STATE)
        await self._room.send(audience, "whisper-state", self.state())
