"""Routing policy: who may publish which source, and who may consume it.

The Router asks ``can_consume`` *before* a Consumer exists; nothing is
filtered after packets flow.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Source(StrEnum):
    CAMERA = "camera"
    MIC = "mic"
    SCREEN = "screen"
    WHISPER = "whisper"


CLASSROOM_SOURCES = frozenset({Source.CAMERA, Source.MIC, Source.SCREEN})
RECORDER_ROLE = "recorder"


@dataclass(frozen=True)
class ProducerInfo:
    producer_id: str
    participant_id: str
    role: str
    source: Source
    kind: str
    #: push-to-talk: the producer starts paused and forwards only while held
    gated: bool = False


class RoutingPolicy(Protocol):
    def can_produce(self, role: str, source: Source) -> bool: ...

    def can_consume(self, producer: ProducerInfo, participant_id: str, role: str) -> bool: ...


class ClassroomPolicy:
    """The teacher's classroom tracks go to coaches, observers and the
    Recorder. No other source is routed by this policy."""

    CONSUMERS = frozenset({"coach", "observer", RECORDER_ROLE})

    def can_produce(self, role: str, source: Source) -> bool:
        return role == "teacher" and source in CLASSROOM_SOURCES

    def can_consume(self, producer: ProducerInfo, participant_id: str, role: str) -> bool:
        if participant_id == producer.participant_id:
            return False
        return producer.source in CLASSROOM_SOURCES and role in self.CONSUMERS
