"""The floor of forwarding one RTP packet in Python, measured in this
process: write the RTP header (``struct.pack``) before the payload,
SRTP-protect the packet with pylibsrtp's ``Session.protect`` (the profile
aiortc picks first) and ``sendto`` it on loopback. Nothing Sidecoach does
per packet and per subscriber costs less than this, with pylibsrtp's API;
``bench_forwarding.py`` divides its per-subscriber cost by it.

    .venv/bin/python scripts/fwdcost.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import struct
import time
from typing import Any

from aiortc.rtcdtlstransport import SRTP_PROFILES
from pylibsrtp import Policy, Session

#: a forwarded VP8 packet's payload (the bench clip's packets are ~1100-1200 bytes)
PAYLOAD_BYTES = 1150
#: packets per timed batch; the sink socket is drained between batches
BATCH = 200
BATCHES = 50
QUICK_BATCHES = 10
#: the sink's receive buffer (a batch must fit, or the kernel drops at the sink)
SINK_BUFFER_BYTES = 8 * 1024 * 1024
_HEADER = struct.Struct("!BBHII")
#: Linux asm-generic/socket.h (root may exceed rmem_max)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def _session() -> tuple[Session, str]:
    profile = SRTP_PROFILES[0]
    key = os.urandom(profile.key_length + profile.salt_length)
    policy = Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                    srtp_profile=profile.libsrtp_profile)  # fmt: skip
    return Session(policy), profile.openssl_profile.decode()


def _drain(sink: socket.socket) -> None:
    while True:
        try:
            sink.recv(65536)
        except BlockingIOError:
            return


def floor(quick: bool = False) -> dict[str, Any]:
    """Median microseconds per packet (over batches) of: the whole floor,
    the header rewrite alone, protect alone, sendto alone."""
    batches = QUICK_BATCHES if quick else BATCHES
    payload = os.urandom(PAYLOAD_BYTES)
    srtp, profile = _session()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        try:
            sink.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, SINK_BUFFER_BYTES)
        except OSError:
            sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SINK_BUFFER_BYTES)
        sink.bind(("127.0.0.1", 0))
        sink.setblocking(False)
        sock.setblocking(False)
        addr = sink.getsockname()
        seq, ts, ssrc = 1, 0, 0x1234_5678
        full, rewrite, protect, send = [], [], [], []
        pack, perf = _HEADER.pack, time.perf_counter_ns
        for _ in range(batches):
            t0 = perf()
            for _ in range(BATCH):
                seq = (seq + 1) & 0xFFFF
                ts = (ts + 30) & 0xFFFFFFFF
                sock.sendto(srtp.protect(pack(0x80, 96, seq, ts, ssrc) + payload), addr)
            full.append((perf() - t0) / BATCH / 1000)
            _drain(sink)
            t0 = perf()
            for _ in range(BATCH):
                seq = (seq + 1) & 0xFFFF
                data = pack(0x80, 96, seq, ts, ssrc) + payload
            rewrite.append((perf() - t0) / BATCH / 1000)
            packets = []
            for _ in range(BATCH):
                seq = (seq + 1) & 0xFFFF
                packets.append(pack(0x80, 96, seq, ts, ssrc) + payload)
            t0 = perf()
            protected = [srtp.protect(p) for p in packets]
            protect.append((perf() - t0) / BATCH / 1000)
            t0 = perf()
            for data in protected:
                sock.sendto(data, addr)
            send.append((perf() - t0) / BATCH / 1000)
            _drain(sink)
        del data
    finally:
        sock.close()
        sink.close()
    return {
        "floor_us_per_packet": round(statistics.median(full), 3),
        "rewrite_us": round(statistics.median(rewrite), 3),
        "protect_us": round(statistics.median(protect), 3),
        "sendto_us": round(statistics.median(send), 3),
        "payload_bytes": PAYLOAD_BYTES,
        "srtp_profile": profile,
        "batches": batches,
        "packets_per_batch": BATCH,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(floor(args.quick), indent=2))


if __name__ == "__main__":
    main()
