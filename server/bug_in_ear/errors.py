"""Errors of the bug-in-ear package."""

from __future__ import annotations

from server.core.errors import InvalidMessage, SidecoachError


class WhisperBusy(SidecoachError):
    """Only one coach may whisper at a time in this session."""

    code = "whisper_busy"


class NoWhisperTrack(SidecoachError):
    code = "no_whisper_track"


class UnknownCue(SidecoachError):
    code = "unknown_cue"


class UnknownCategory(SidecoachError):
    code = "unknown_category"


class NothingToUndo(SidecoachError):
    code = "nothing_to_undo"


class UnknownNote(SidecoachError):
    code = "unknown_note"


class EmptyNote(InvalidMessage):
    code = "invalid_message"
