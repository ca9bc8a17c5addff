"""Errors of the recording package."""

from __future__ import annotations

from server.core.errors import Conflict, NotFound


class RecordingNotFound(NotFound):
    code = "recording_not_found"


class RecordingBusy(Conflict):
    """The recording is still being made (e.g. a delete while recording)."""

    code = "recording_in_progress"
