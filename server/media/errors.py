"""Errors of the media layer (turned into client codes at the signaling edge)."""

from __future__ import annotations

from server.core.errors import SidecoachError


class MediaError(SidecoachError):
    code = "media_error"


class NotPermitted(MediaError):
    """The routing policy refused a consumer."""

    code = "not_permitted"


class ProducerClosed(MediaError):
    code = "producer_closed"


class UnsupportedCodec(MediaError):
    code = "unsupported_codec"
