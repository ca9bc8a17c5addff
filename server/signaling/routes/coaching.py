"""Bug-in-ear during a lesson: push-to-talk whispers, cues and their
acknowledgement, tallies, live notes. Who may send each is the access
policy's (``Action``)."""

from __future__ import annotations

from server.access.policy import Action
from server.signaling import schemas
from server.signaling.dispatcher import Connection, Dispatcher, Reply, joined


def register(dispatcher: Dispatcher) -> None:
    async def whisper_start(conn: Connection, msg: schemas.Empty) -> Reply:
        session, participant = joined(conn)
        await session.push_to_talk.start(participant.id)
        return {}

    async def whisper_stop(conn: Connection, msg: schemas.Empty) -> Reply:
        session, participant = joined(conn)
        await session.push_to_talk.stop(participant.id)
        return {}

    async def cue(conn: Connection, msg: schemas.SendCue) -> Reply:
        session, participant = joined(conn)
        sent = await session.cues.send(
            participant.id,
            text=msg.text,
            prompt_index=msg.promptIndex,
            icon=msg.icon,
            color=msg.color,
            tone=msg.tone,
            category=session.tallies.category_of(msg.category),
        )
        return {"cue": sent.to_client()}

    async def cue_ack(conn: Connection, msg: schemas.CueAck) -> Reply:
        session, participant = joined(conn)
        acknowledged = await session.cues.acknowledge(participant.id, msg.cueId)
        return {"cue": acknowledged.to_client()}

    async def tally(conn: Connection, msg: schemas.Tally) -> Reply:
        session, participant = joined(conn)
        await session.tallies.tap(participant.id, msg.category)
        return {"counts": session.tallies.counts()}

    async def tally_undo(conn: Connection, msg: schemas.Empty) -> Reply:
        session, participant = joined(conn)
        await session.tallies.undo(participant.id)
        return {"counts": session.tallies.counts()}

    async def note(conn: Connection, msg: schemas.Note) -> Reply:
        session, participant = joined(conn)
        return {"note": await session.notes.add(participant.id, msg.text, msg.visibility)}

    async def note_share(conn: Connection, msg: schemas.NoteShare) -> Reply:
        session, participant = joined(conn)
        return {"note": await session.notes.share(participant.id, msg.noteId, msg.visibility)}

    add = dispatcher.add
    add("whisper-start", schemas.Empty, whisper_start, action=Action.WHISPER)
    add("whisper-stop", schemas.Empty, whisper_stop, action=Action.WHISPER)
    add("cue", schemas.SendCue, cue, action=Action.SEND_CUE)
    add("cue-ack", schemas.CueAck, cue_ack, action=Action.ACK_CUE)
    add("tally", schemas.Tally, tally, action=Action.TALLY)
    add("tally-undo", schemas.Empty, tally_undo, action=Action.TALLY)
    add("note", schemas.Note, note, action=Action.NOTE)
    add("note-share", schemas.NoteShare, note_share, action=Action.NOTE)
