"""Errors of the recording package."""

from __future__ import annotations

from server.core.errors import NotFound, SidecoachError


class RecordingError(SidecoachError):
    code = "recording_error"


class StorageFull(RecordingError):
    """The disk is full or unwritable: recording stopped, nothing written is lost."""

    code = "storage_unavailable"


class RecordingNotFound(NotFound):
    code = "recording_not_found"
