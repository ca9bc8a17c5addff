"""Router: the per-session media switch.

It owns the session's Producers and decides, by asking the routing policy
*before* a Consumer exists, which endpoints (participants' peer connections,
the Recorder) get a Consumer of each Producer. Closing a Producer closes its
Consumers; removing an endpoint closes everything it published and consumed.
"""

from __future__ import annotations

import logging
import secrets
from typing import Protocol

from server.media.consumer import Consumer, PacketWriter
from server.media.policy import RECORDER_ROLE, RoutingPolicy
from server.media.producer import Producer

logger = logging.getLogger(__name__)


class ConsumerEndpoint(Protocol):
    """Something that can receive forwarded tracks."""

    @property
    def participant_id(self) -> str: ...

    @property
    def role(self) -> str: ...

    def open_writer(self, consumer: Consumer) -> PacketWriter:
        """Create the outbound leg for ``consumer`` (synchronously; a
        WebRTC endpoint renegotiates in the background)."""
        ...

    def release_writer(self, consumer: Consumer) -> None:
        """``consumer`` closed: tear its leg down."""
        ...


#: counters of Producers and Consumers, summed by the Router as they close
PRODUCER_COUNTERS = ("packets_received", "bytes_received", "packets_gated", "keyframes_requested",
                     "nacks_sent")  # fmt: skip
CONSUMER_COUNTERS = ("packets_sent", "bytes_sent", "packets_dropped", "nacks_received",
                     "packets_retransmitted", "keyframe_requests_received")  # fmt: skip


class Router:
    def __init__(self, session_id: str, policy: RoutingPolicy) -> None:
        self.session_id = session_id
        self.policy = policy
        self.producers: dict[str, Producer] = {}
        #: what closed producers and consumers counted (their kind prefixed:
        #: "video:packets_sent"; consumers of the Recorder as "recorder:..."),
        #: so totals over a session never go down (read by /metrics)
        self.retired: dict[str, int] = {}
        self._endpoints: dict[str, ConsumerEndpoint] = {}
        self.closed = False
        self._log = logging.LoggerAdapter(logger, {"session": session_id})

    # -- endpoints ------------------------------------------------------

    def add_endpoint(self, endpoint: ConsumerEndpoint) -> None:
        self._endpoints[endpoint.participant_id] = endpoint
        for producer in list(self.producers.values()):
            self._maybe_consume(producer, endpoint)

    async def remove_endpoint(self, participant_id: str) -> None:
        """Close what the participant published and what it consumed."""
        endpoint = self._endpoints.pop(participant_id, None)
        for producer in [
            p for p in self.producers.values() if p.info.participant_id == participant_id
        ]:
            await self.close_producer(producer.id)
        if endpoint is not None:
            for producer in self.producers.values():
                for consumer in [
                    c for c in producer.consumers.values() if c.participant_id == participant_id
                ]:
                    consumer.close()

    # -- producers ------------------------------------------------------

    def add_producer(self, producer: Producer) -> None:
        if self.closed:
            raise RuntimeError("router is closed")
        self.producers[producer.id] = producer
        producer.on_close(self._forget)
        for endpoint in list(self._endpoints.values()):
            self._maybe_consume(producer, endpoint)

    def _forget(self, producer: Producer) -> None:
        self.producers.pop(producer.id, None)
        for name in PRODUCER_COUNTERS:
            key = f"{producer.kind}:{name}"
            self.retired[key] = self.retired.get(key, 0) + getattr(producer, name)

    def _retire_consumer(self, consumer: Consumer, role: str) -> None:
        kind = "recorder" if role == RECORDER_ROLE else consumer.producer.kind
        for name in CONSUMER_COUNTERS:
            key = f"{kind}:{name}"
            self.retired[key] = self.retired.get(key, 0) + getattr(consumer, name)

    async def close_producer(self, producer_id: str) -> None:
        producer = self.producers.get(producer_id)
        if producer is not None:
            await producer.close()

    def _maybe_consume(self, producer: Producer, endpoint: ConsumerEndpoint) -> Consumer | None:
        if producer.closed or not self.policy.can_consume(
            producer.info, endpoint.participant_id, endpoint.role
        ):
            return None
        if any(c.participant_id == endpoint.participant_id for c in producer.consumers.values()):
            return None
        consumer = Consumer(
            "c-" + secrets.token_hex(6), producer, endpoint.participant_id, endpoint.role
        )
        consumer.bind(endpoint.open_writer(consumer))
        consumer.on_close(endpoint.release_writer)
        role = endpoint.role
        consumer.on_close(lambda c: self._retire_consumer(c, role))
        producer.add_consumer(consumer)
        self._log.debug("consumer %s: %s -> %s", consumer.id, producer.id, endpoint.participant_id)
        return consumer

    def consumers_of(self, participant_id: str) -> list[Consumer]:
        return [
            c
            for p in self.producers.values()
            for c in p.consumers.values()
            if c.participant_id == participant_id
        ]

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for producer in list(self.producers.values()):
            await producer.close()
        self._endpoints.clear()
