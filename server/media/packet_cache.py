"""A fixed-size ring of recent RTP packets, indexed by sequence number, to
answer NACKs without asking the publisher again."""

from __future__ import annotations

from aiortc.rtp import RtpPacket


class PacketCache:
    def __init__(self, size: int) -> None:
        if size <= 0 or size & (size - 1):
            raise ValueError("packet cache size must be a power of two")
        self._mask = size - 1
        self._slots: list[RtpPacket | None] = [None] * size

    def put(self, packet: RtpPacket) -> None:
        self._slots[packet.sequence_number & self._mask] = packet

    def get(self, sequence_number: int) -> RtpPacket | None:
        packet = self._slots[sequence_number & self._mask]
        if packet is not None and packet.sequence_number == sequence_number:
            return packet
        return None

    def clear(self) -> None:
        self._slots = [None] * len(self._slots)
