"""Socket.io messages of a debrief room: the clock pages sync to, and the
shared playback (the driver's commands, taking the wheel, a player that is
buffering)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from server.access.policy import Action
from server.core.errors import Forbidden
from server.live.debrief.playback import MAX_POSITION_S, server_ms
from server.live.debrief.room import DebriefRoom
from server.signaling.dispatcher import Connection, Dispatcher, Reply, joined
from server.signaling.schemas import Empty, Message


class PlaybackCommand(Message):
    action: Literal["play", "pause", "seek", "rate"]
    position: Annotated[float, Field(ge=0, le=MAX_POSITION_S)] | None = None
    rate: Annotated[float, Field(ge=0.25, le=4.0)] | None = None


class Buffering(Message):
    buffering: bool


def register(dispatcher: Dispatcher) -> None:
    def room(conn: Connection) -> tuple[DebriefRoom, str]:
        session, participant = joined(conn)
        if session.debrief is None:
            raise Forbidden("this is not a debrief room")
        return session.debrief, participant.id

    async def time_sync(conn: Connection, msg: Empty) -> Reply:
        # NTP-style: the page notes when it asked and when the answer came
        return {"serverMs": server_ms()}

    async def playback(conn: Connection, msg: PlaybackCommand) -> Reply:
        debrief, participant_id = room(conn)
        state = await debrief.command(participant_id, msg.action, msg.position, msg.rate)
        return {"playback": state}

    async def drive(conn: Connection, msg: Empty) -> Reply:
        debrief, participant_id = room(conn)
        return {"playback": await debrief.drive(participant_id)}

    async def buffering(conn: Connection, msg: Buffering) -> Reply:
        debrief, participant_id = room(conn)
        return {"playback": await debrief.buffering(participant_id, msg.buffering)}

    drives = Action.DRIVE_PLAYBACK
    dispatcher.add("time-sync", Empty, time_sync)
    dispatcher.add("playback", PlaybackCommand, playback, action=drives)
    dispatcher.add("playback-drive", Empty, drive, action=drives)
    dispatcher.add("playback-buffering", Buffering, buffering, action=drives)
