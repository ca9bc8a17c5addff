"""Errors of the bug-in-ear package."""

from __future__ import annotations

from server.core.errors import Conflict, InvalidMessage, NotFound


class WhisperBusy(Conflict):
    """Only one coach may whisper at a time in this session."""

    code = "whisper_busy"


class NoWhisperTrack(Conflict):
    code = "no_whisper_track"


class UnknownCue(NotFound):
    code = "unknown_cue"


class UnknownCategory(InvalidMessage):
    code = "unknown_category"


class NothingToUndo(Conflict):
    code = "nothing_to_undo"


class UnknownNote(NotFound):
    code = "unknown_note"


class EmptyNote(InvalidMessage):
    """A note with no text."""
