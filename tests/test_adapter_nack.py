"""NACKs the server sends upstream pack as aiortc needs them: a duplicate,
an unordered list or a sequence-number wrap once made aiortc's packer
raise ("negative shift count") and the NACK was lost."""

from __future__ import annotations

from aiortc.rtp import RtcpRtpfbPacket

from server.media.aiortc_adapter import nack_runs


def lost_after_packing(runs: list[list[int]]) -> list[int]:
    lost: list[int] = []
    for run in runs:
        data = bytes(RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=2, lost=run))
        lost += RtcpRtpfbPacket.parse(data[4:], 1).lost
    return lost


def test_duplicates_and_disorder_pack_once_each() -> None:
    runs = nack_runs([5, 3, 3, 4, 9])
    assert runs == [[3, 4, 5, 9]]
    assert lost_after_packing(runs) == [3, 4, 5, 9]


def test_a_wrap_of_the_counter_is_two_nacks_in_order() -> None:
    runs = nack_runs([65534, 0, 65535, 1, 1])
    assert runs == [[65534, 65535], [0, 1]]
    assert lost_after_packing(runs) == [65534, 65535, 0, 1]


def test_nothing_lost_is_no_nack() -> None:
    assert nack_runs([]) == []
