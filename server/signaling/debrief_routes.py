"""Socket.io messages of a debrief room: the clock pages sync to, and the
shared playback (the driver's commands, taking the wheel, a player that is
buffering). Registered on ``Signaling`` like its own routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from server.core.errors import Forbidden
from server.live.debrief.playback import MAX_POSITION_S, server_ms
from server.signaling.schemas import Empty, Message

if TYPE_CHECKING:
    from server.live.session import Participant, Session
    from server.signaling.namespace import Connection, Reply, Signaling

MEMBER = frozenset({"member"})


class PlaybackCommand(Message):
    action: Literal["play", "pause", "seek", "rate"]
    position: Annotated[float, Field(ge=0, le=MAX_POSITION_S)] | None = None
    rate: Annotated[float, Field(ge=0.25, le=4.0)] | None = None


class Buffering(Message):
    buffering: bool


def register(signaling: Signaling) -> None:
    def room(conn: Connection) -> tuple[Session, Participant]:
        session, participant = signaling.joined(conn)
        if session.debrief is None:
            raise Forbidden("this is not a debrief room")
        return session, participant

    async def time_sync(conn: Connection, msg: Empty) -> Reply:
        # NTP-style: the page notes when it asked and when the answer came
        return {"serverMs": server_ms()}

    async def playback(conn: Connection, msg: PlaybackCommand) -> Reply:
        session, participant = room(conn)
        assert session.debrief is not None
        state = await session.debrief.command(participant.id, msg.action, msg.position, msg.rate)
        return {"playback": state}

    async def drive(conn: Connection, msg: Empty) -> Reply:
        session, participant = room(conn)
        assert session.debrief is not None
        return {"playback": await session.debrief.drive(participant.id)}

    async def buffering(conn: Connection, msg: Buffering) -> Reply:
        session, participant = room(conn)
        assert session.debrief is not None
        return {"playback": await session.debrief.buffering(participant.id, msg.buffering)}

    signaling.add_route("time-sync", Empty, time_sync)
    signaling.add_route("playback", PlaybackCommand, playback, roles=MEMBER)
    signaling.add_route("playback-drive", Empty, drive, roles=MEMBER)
    signaling.add_route("playback-buffering", Buffering, buffering, roles=MEMBER)
