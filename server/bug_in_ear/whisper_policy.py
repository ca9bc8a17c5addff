"""The whisper rule: a coach's whisper reaches the session's teacher and the
Recorder, and no one else, whatever the order of joins and leaves."""

from __future__ import annotations

from server.media.policy import RECORDER_ROLE, ProducerInfo, RoutingPolicy, Source

WHISPER_CONSUMERS = frozenset({"teacher", RECORDER_ROLE})


def is_push_to_talk(source: Source) -> bool:
    """Whisper producers forward only while their coach holds the button."""
    return source == Source.WHISPER


class WhisperPolicy:
    """Wraps the classroom policy and adds the whisper route."""

    def __init__(self, inner: RoutingPolicy) -> None:
        self._inner = inner

    def can_produce(self, role: str, source: Source) -> bool:
        if source == Source.WHISPER:
            return role == "coach"
        return self._inner.can_produce(role, source)

    def can_consume(self, producer: ProducerInfo, participant_id: str, role: str) -> bool:
        if producer.source == Source.WHISPER:
            return (
                producer.role == "coach"
                and participant_id != producer.participant_id
                and role in WHISPER_CONSUMERS
            )
        return self._inner.can_consume(producer, participant_id, role)
