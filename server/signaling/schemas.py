"""Schemas of every client→server signaling message, checked at the edge.

Unknown fields are refused, strings and lists are bounded; a message that
fails validation gets an ``invalid_message`` error and changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from server.access.policy import Visibility
from server.media.policy import Source

MAX_TOKEN_CHARS = 4096
MAX_ID_CHARS = 64

Token = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TOKEN_CHARS)]
Ident = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
#: bounded by ``limits.max_message_bytes``; ``limits.max_sdp_bytes`` is
#: checked by the handler (limits come from Config)
Sdp = Annotated[str, StringConstraints(min_length=1)]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Join(Message):
    token: Token
    name: Annotated[str, StringConstraints(max_length=80, strip_whitespace=True)] | None = None
    #: the session the client means to join (from its page URL); a token for
    #: another session is refused instead of silently joining that one
    sessionId: Ident | None = None


class Publish(Message):
    source: Source
    kind: Literal["audio", "video"]
    codec: Annotated[str, StringConstraints(max_length=32)] | None = None


class Unpublish(Message):
    producerId: Ident


class Answer(Message):
    negotiationId: Annotated[int, Field(ge=0)]
    sdp: Sdp


class Empty(Message):
    pass


Short = Annotated[str, StringConstraints(max_length=32)]


class SendCue(Message):
    text: Annotated[str, StringConstraints(max_length=80)] | None = None
    promptIndex: Annotated[int, Field(ge=0, lt=64)] | None = None
    icon: Short | None = None
    color: Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")] | None = None
    tone: bool = False
    #: the tally category this cue asks for (its uptake is measured by it)
    category: Annotated[str, StringConstraints(max_length=40)] | None = None


class CueAck(Message):
    cueId: Ident


class Tally(Message):
    category: Annotated[str, StringConstraints(min_length=1, max_length=40)]


class Note(Message):
    text: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    #: private to its author (default), shared with the coaching team, or everyone
    visibility: Visibility = Visibility.PRIVATE

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("a note needs some text")
        return text


class NoteShare(Message):
    noteId: Ident
    visibility: Visibility


class RecordingPlan(Message):
    """The teacher decides: record this lesson (from now on), or not."""

    record: bool


class CheckProbe(Message):
    """A test connection of the pre-lesson check: the server offers to
    receive one track from this source (a ``camera`` as a lesson's, in
    simulcast; a ``screen``: one plain video stream; a ``mic``)."""

    source: Literal["camera", "screen", "mic"]


class CheckAnswer(Message):
    probeId: Ident
    negotiationId: Annotated[int, Field(ge=0)]
    sdp: Sdp


class CheckStats(Message):
    probeId: Ident
