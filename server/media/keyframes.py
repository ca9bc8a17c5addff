"""Does this RTP payload start a keyframe? Read from the payload descriptor
only (RFC 7741 for VP8, RFC 6184 for H.264); nothing is decoded.

A new Consumer of a video Producer forwards nothing until a keyframe
starts, so a joining coach's decoder never chews on frames it cannot use;
a simulcast Consumer switches layers only at a keyframe, and continues the
VP8 picture ids of the layer it left (``Vp8Ids``).
"""

from __future__ import annotations

H264_IDR = 5
H264_SPS = 7
H264_STAP_A = 24
H264_FU_A = 28


def starts_keyframe(mime_type: str, payload: bytes) -> bool:
    mime = mime_type.lower()
    if mime == "video/vp8":
        return _vp8(payload)
    if mime == "video/h264":
        return _h264(payload)
    return True  # a codec we cannot inspect is never held back


def _vp8_header_at(p: bytes) -> int | None:
    """Where the VP8 payload header starts after the payload descriptor, or
    None when this packet does not start partition 0 of a frame."""
    if not p:
        return None
    b0 = p[0]
    if not b0 & 0x10 or b0 & 0x07:  # S bit: start of partition 0
        return None
    i = 1
    if b0 & 0x80:  # X: extension byte follows
        if len(p) < 2:
            return None
        ext = p[1]
        i = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if len(p) <= i:
                return None
            i += 2 if p[i] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            i += 1
        if ext & 0x30:  # T/K: TID/KEYIDX
            i += 1
    return i if len(p) > i else None


def vp8_descriptor_size(p: bytes) -> int:
    """Bytes of the VP8 payload descriptor at the start of RTP payload
    ``p`` (RFC 7741 4.2); ValueError if it is cut short."""
    if not p:
        raise ValueError("VP8 payload descriptor missing")
    if not p[0] & 0x80:  # no X: one byte
        return 1
    i = 2
    if len(p) > 1:
        ext = p[1]
        if ext & 0x80 and len(p) > 2:  # I: picture id, 7 or 15 bits
            i += 2 if p[2] & 0x80 else 1
        elif ext & 0x80:
            i += 1
        if ext & 0x40:  # L: TL0PICIDX
            i += 1
        if ext & 0x30:  # T/K: TID/KEYIDX
            i += 1
    if len(p) < i:
        raise ValueError("VP8 payload descriptor cut short")
    return i


def _vp8(p: bytes) -> bool:
    i = _vp8_header_at(p)
    return i is not None and not p[i] & 0x01  # P bit of the VP8 header: 0 = keyframe


def vp8_keyframe_size(payload: bytes) -> tuple[int, int] | None:
    """Width and height of the VP8 keyframe this RTP payload starts
    (RFC 6386 9.1), or None."""
    i = _vp8_header_at(payload)
    if i is None or payload[i] & 0x01 or len(payload) < i + 10:
        return None
    if payload[i + 3 : i + 6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(payload[i + 6 : i + 8], "little") & 0x3FFF
    height = int.from_bytes(payload[i + 8 : i + 10], "little") & 0x3FFF
    return width, height


def _h264(p: bytes) -> bool:
    if not p:
        return False
    nal = p[0] & 0x1F
    if nal in (H264_IDR, H264_SPS):
        return True
    if nal == H264_STAP_A:
        i = 1
        while i + 2 < len(p):
            size = (p[i] << 8) | p[i + 1]
            i += 2
            if p[i] & 0x1F in (H264_IDR, H264_SPS):
                return True
            i += size
        return False
    if nal == H264_FU_A and len(p) > 1:
        return bool(p[1] & 0x80) and p[1] & 0x1F == H264_IDR
    return False


class Vp8Ids:
    """Where the picture id and TL0PICIDX sit in a VP8 payload descriptor
    (RFC 7741 4.2), to continue them across a simulcast layer switch: each
    layer numbers its pictures on its own, and a receiver must see one
    sequence."""

    __slots__ = ("picture_id", "picture_id_bits", "tl0", "_pid_at", "_tl0_at")

    def __init__(self, payload: bytes) -> None:
        self.picture_id: int | None = None
        self.picture_id_bits = 0
        self.tl0: int | None = None
        self._pid_at = self._tl0_at = -1
        if len(payload) < 2 or not payload[0] & 0x80:  # no X: no ids
            return
        ext, i = payload[1], 2
        if ext & 0x80 and len(payload) > i:  # I
            self._pid_at = i
            if payload[i] & 0x80:  # M: 15 bits
                if len(payload) <= i + 1:
                    return
                self.picture_id = ((payload[i] & 0x7F) << 8) | payload[i + 1]
                self.picture_id_bits = 15
                i += 2
            else:
                self.picture_id = payload[i] & 0x7F
                self.picture_id_bits = 7
                i += 1
        if ext & 0x40 and len(payload) > i:  # L
            self._tl0_at = i
            self.tl0 = payload[i]

    def rewrite(self, payload: bytes, picture_id_delta: int, tl0_delta: int) -> bytes:
        """``payload`` with both ids moved on by the deltas (modulo their size)."""
        moves_pid = bool(picture_id_delta) and self.picture_id is not None
        moves_tl0 = bool(tl0_delta) and self.tl0 is not None
        if not moves_pid and not moves_tl0:
            return payload
        out = bytearray(payload)
        if moves_pid and self.picture_id is not None:
            mask = (1 << self.picture_id_bits) - 1
            pid = (self.picture_id + picture_id_delta) & mask
            if self.picture_id_bits == 15:
                out[self._pid_at] = 0x80 | (pid >> 8)
                out[self._pid_at + 1] = pid & 0xFF
            else:
                out[self._pid_at] = pid
        if moves_tl0 and self.tl0 is not None:
            out[self._tl0_at] = (self.tl0 + tl0_delta) & 0xFF
        return bytes(out)
