"""The lesson itself: the teacher (or a debrief's owner) plans, pauses and
resumes its recording and ends it for everyone."""

from __future__ import annotations

from server.access.policy import Action
from server.live.manager import SessionManager
from server.signaling import schemas
from server.signaling.dispatcher import Connection, Dispatcher, Reply, joined


def register(dispatcher: Dispatcher, manager: SessionManager) -> None:
    async def pause(conn: Connection, msg: schemas.Empty) -> Reply:
        session, participant = joined(conn)
        session.pause_recording(participant)
        return {"recording": session.recording_state}

    async def resume(conn: Connection, msg: schemas.Empty) -> Reply:
        session, participant = joined(conn)
        session.resume_recording(participant)
        return {"recording": session.recording_state}

    async def plan(conn: Connection, msg: schemas.RecordingPlan) -> Reply:
        session, participant = joined(conn)
        await session.plan_recording(participant, msg.record)
        return {"recording": session.recording_state}

    async def end(conn: Connection, msg: schemas.Empty) -> Reply:
        session, participant = joined(conn)
        await manager.end_session(session.id, reason=f"ended by {participant.name}")
        return {}

    decides = Action.DECIDE_RECORDING
    dispatcher.add("recording-pause", schemas.Empty, pause, action=decides)
    dispatcher.add("recording-resume", schemas.Empty, resume, action=decides)
    dispatcher.add("recording-plan", schemas.RecordingPlan, plan, action=decides)
    dispatcher.add("end-session", schemas.Empty, end, action=Action.END_SESSION)
