"""Errors of the media layer (turned into client codes at the signaling edge)."""

from __future__ import annotations

from server.core.errors import InvalidMessage, NotFound


class UnsupportedCodec(InvalidMessage):
    """A publish asked for a codec the server does not forward."""

    code = "unsupported_codec"


class UnknownProducer(NotFound):
    """No such track of this participant."""

    code = "unknown_producer"
