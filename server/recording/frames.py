"""RTP packets → whole encoded frames, for the Recorder (no decoding).

Packets reach the Recorder in arrival order with gap-free sequence numbers
and timestamps in the Consumer's space (continuous across a simulcast layer
switch; see ``Consumer``); a frame is complete when its packets from the
start to the marker bit are all there. An incomplete video frame is
dropped and the track waits for the next keyframe.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from aiortc.rtp import RtpPacket

from server.media.aiortc_adapter import depayload
from server.media.keyframes import starts_keyframe
from server.recording.h264_sps import annexb_nals, sps_dimensions


@dataclass(frozen=True)
class Frame:
    data: bytes
    rtp_timestamp: int
    keyframe: bool


class FrameAssembler:
    def __init__(self, mime_type: str) -> None:
        self._mime = mime_type
        self._video = mime_type.lower().startswith("video/")
        self._ts: int | None = None
        self._start_seq = 0
        self._parts: list[tuple[int, bytes]] = []
        self._started = False
        self._keyframe = False
        self.frames_dropped = 0

    def push(self, packet: RtpPacket, sequence_number: int, timestamp: int) -> Frame | None:
        """Feed one packet (with the Consumer's sequence number and
        timestamp); returns a frame when one completes."""
        if not self._video:
            return Frame(packet.payload, timestamp, True) if packet.payload else None
        if timestamp != self._ts:
            if self._parts:
                self.frames_dropped += 1  # the previous frame never completed
            self._ts = timestamp
            self._parts = []
            self._started = False
        if not self._parts:
            if not _starts_frame(self._mime, packet.payload):
                return None
            self._started = True
            self._start_seq = sequence_number
            self._keyframe = starts_keyframe(self._mime, packet.payload)
        self._parts.append((sequence_number, depayload(self._mime, packet.payload)))
        if not packet.marker:
            return None
        parts, self._parts = self._parts, []
        expected = (parts[-1][0] - self._start_seq) & 0xFFFF
        if expected + 1 != len(parts):
            self.frames_dropped += 1
            return None
        return Frame(b"".join(p for _, p in parts), timestamp, self._keyframe)


def _starts_frame(mime: str, payload: bytes) -> bool:
    if not payload:
        return False
    if mime.lower() == "video/vp8":
        return bool(payload[0] & 0x10) and payload[0] & 0x07 == 0
    if mime.lower() == "video/h264":
        nal = payload[0] & 0x1F
        return nal != 28 or (len(payload) > 1 and bool(payload[1] & 0x80))
    return True


def vp8_dimensions(keyframe: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe header (RFC 6386 9.1)."""
    if len(keyframe) < 10 or keyframe[3:6] != b"\x9d\x01\x2a":
        return None
    width, height = struct.unpack_from("<HH", keyframe, 6)
    return width & 0x3FFF, height & 0x3FFF


def keyframe_size(codec: str, data: bytes) -> tuple[int, int] | None:
    """Width and height of a VP8 or H.264 (Annex B) keyframe, or None."""
    if codec == "vp8":
        return vp8_dimensions(data)
    if codec == "h264":
        return next(filter(None, map(sps_dimensions, annexb_nals(data))), None)
    return None


def opus_head(channels: int = 2, pre_skip: int = 312, rate: int = 48000) -> bytes:
    """The OpusHead (RFC 7845) Matroska and browsers expect as codec private data."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, rate, 0, 0)
