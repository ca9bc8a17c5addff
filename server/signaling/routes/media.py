"""Publishing and negotiation: publish a track, stop it, answer the
server's offer (negotiation is server-driven: the server always offers)."""

from __future__ import annotations

from server.core.config import Limits
from server.core.errors import MessageTooLarge
from server.signaling import schemas
from server.signaling.dispatcher import Connection, Dispatcher, Reply, joined


def register(dispatcher: Dispatcher, limits: Limits) -> None:
    async def publish(conn: Connection, msg: schemas.Publish) -> Reply:
        session, participant = joined(conn)
        producer_id = session.publish(participant, msg.source, msg.kind, msg.codec)
        return {"producerId": producer_id}

    async def unpublish(conn: Connection, msg: schemas.Unpublish) -> Reply:
        session, participant = joined(conn)
        await session.unpublish(participant, msg.producerId)
        return {}

    async def answer(conn: Connection, msg: schemas.Answer) -> Reply:
        _, participant = joined(conn)
        if len(msg.sdp.encode()) > limits.max_sdp_bytes:
            raise MessageTooLarge(f"SDP of more than {limits.max_sdp_bytes} bytes")
        await participant.peer.handle_answer(msg.negotiationId, msg.sdp)
        return {}

    dispatcher.add("publish", schemas.Publish, publish)
    dispatcher.add("unpublish", schemas.Unpublish, unpublish)
    dispatcher.add("answer", schemas.Answer, answer)
