"""A participant whose client makes the one SDP offer (WHIP, WHEP) instead
of answering the server's: what its m-lines may carry, by the access policy.

The first video m-line the client sends is its camera and the first audio
one its (room) mic, if its role may publish them; a receiving m-line is a
slot for the classroom only when the endpoint receives (WHEP). Everything
else in the offer is refused (inactive in the answer).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from server.access.policy import AccessPolicy
from server.core.config import Limits
from server.media.peer import PublishPlan
from server.media.policy import ProducerInfo, Source

#: what a client-sent m-line of each kind publishes
SOURCE_OF_KIND = {"video": Source.CAMERA, "audio": Source.MIC}


@dataclass(frozen=True)
class ClientOffer:
    sdp: str
    #: the client receives the classroom (WHEP); a publisher receives nothing
    receive: bool = False


def publish_plan(
    policy: AccessPolicy, limits: Limits, participant_id: str, role: str
) -> tuple[PublishPlan, list[str]]:
    """The plan for a client's offer, and the producer ids it handed out."""
    taken: set[Source] = set()
    producer_ids: list[str] = []

    def plan(kind: str) -> ProducerInfo | None:
        source = SOURCE_OF_KIND.get(kind)
        if (
            source is None
            or source in taken
            or not policy.can_produce(role, source)
            or len(producer_ids) >= limits.max_producers_per_participant
        ):
            return None
        taken.add(source)
        producer_id = "t-" + secrets.token_hex(6)
        producer_ids.append(producer_id)
        return ProducerInfo(producer_id, participant_id, role, source, kind)

    return plan, producer_ids
