"""Participant roles."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    TEACHER = "teacher"
    COACH = "coach"
    OBSERVER = "observer"
    MEMBER = "member"
    #: a device publishing over WHIP with a camera token: publishes the
    #: classroom's camera and room mic, receives nothing
    CAMERA = "camera"


class SessionState(StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"
