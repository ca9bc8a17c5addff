"""Does this RTP payload start a keyframe? Read from the payload descriptor
only (RFC 7741 for VP8, RFC 6184 for H.264); nothing is decoded.

A new Consumer of a video Producer forwards nothing until a keyframe
starts, so a joining coach's decoder never chews on frames it cannot use.
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


def _vp8(p: bytes) -> bool:
    if not p:
        return False
    b0 = p[0]
    if not b0 & 0x10 or b0 & 0x07:  # S bit: start of partition 0
        return False
    i = 1
    if b0 & 0x80:  # X: extension byte follows
        if len(p) < 2:
            return False
        ext = p[1]
        i = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if len(p) <= i:
                return False
            i += 2 if p[i] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            i += 1
        if ext & 0x30:  # T/K: TID/KEYIDX
            i += 1
    return len(p) > i and not p[i] & 0x01  # P bit of the VP8 header: 0 = keyframe


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
