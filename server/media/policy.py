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
    """Implemented by ``server.access.policy.AccessPolicy`` (the one policy that
    also answers who reads what afterwards)."""

    def can_produce(self, role: str, source: Source) -> bool: ...

    def can_consume(self, producer: ProducerInfo, participant_id: str, role: str) -> bool: ...
