"""Picture size from an H.264 sequence parameter set (ITU-T H.264 7.3.2.1),
so an H.264 track can be muxed into Matroska without decoding anything."""

from __future__ import annotations

HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


class _Bits:
    def __init__(self, data: bytes) -> None:
        # drop emulation-prevention bytes (00 00 03 → 00 00)
        out = bytearray()
        zeros = 0
        for b in data:
            if zeros >= 2 and b == 3:
                zeros = 0
                continue
            out.append(b)
            zeros = zeros + 1 if b == 0 else 0
        self._data = bytes(out)
        self._pos = 0

    def bit(self) -> int:
        byte = self._data[self._pos >> 3]  # IndexError on truncated data
        value = (byte >> (7 - (self._pos & 7))) & 1
        self._pos += 1
        return value

    def bits(self, n: int) -> int:
        v = 0
        for _ in range(n):
            v = (v << 1) | self.bit()
        return v

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _skip_scaling_list(r: _Bits, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + r.se() + 256) % 256
        last = nxt or last


def sps_dimensions(nal: bytes) -> tuple[int, int] | None:
    """(width, height) from an SPS NAL unit (with its 1-byte header)."""
    if not nal or nal[0] & 0x1F != 7:
        return None
    try:
        r = _Bits(nal[1:])
        profile = r.bits(8)
        r.bits(16)  # constraint flags, level
        r.ue()  # seq_parameter_set_id
        chroma = 1
        if profile in HIGH_PROFILES:
            chroma = r.ue()
            if chroma == 3:
                r.bit()
            r.ue()
            r.ue()
            r.bit()
            if r.bit():  # seq_scaling_matrix_present
                for i in range(12 if chroma == 3 else 8):
                    if r.bit():
                        _skip_scaling_list(r, 16 if i < 6 else 64)
        r.ue()  # log2_max_frame_num_minus4
        poc_type = r.ue()
        if poc_type == 0:
            r.ue()
        elif poc_type == 1:
            r.bit()
            r.se()
            r.se()
            for _ in range(r.ue()):
                r.se()
        r.ue()  # max_num_ref_frames
        r.bit()
        width_mbs = r.ue() + 1
        height_units = r.ue() + 1
        frame_mbs_only = r.bit()
        if not frame_mbs_only:
            r.bit()
        r.bit()
        width = width_mbs * 16
        height = height_units * 16 * (2 - frame_mbs_only)
        if r.bit():  # frame_cropping
            left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
            crop_x = 1 if chroma in (0, 3) else 2
            crop_y = (1 if chroma in (0, 3) else 2) if chroma != 1 else 2
            crop_y *= 2 - frame_mbs_only
            width -= (left + right) * crop_x
            height -= (top + bottom) * crop_y
        return width, height
    except (IndexError, ValueError):
        return None


def annexb_nals(data: bytes) -> list[bytes]:
    """Split an Annex B byte stream into NAL units."""
    nals: list[bytes] = []
    for chunk in data.split(b"\x00\x00\x01"):
        chunk = chunk.rstrip(b"\x00")
        if chunk:
            nals.append(chunk)
    return nals
