"""Summarize a ``py-spy record --format raw`` profile (collapsed stacks):
the share of samples under each of a few forwarding-path functions
(inclusive), and the functions that take the most samples themselves
(self), as % of all samples of the process's threads.

    .venv/bin/python scripts/profile_summary.py PROFILE.txt [--top 30]

Idle samples (a thread waiting in ``epoll_wait``/``select``, or a worker
waiting on its queue) are left out, so the shares are of busy time.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

#: frames of a thread that is waiting, not working (anywhere in its stack)
IDLE_FRAMES = ("epoll_wait", "SimpleQueue_get", "select (selectors.py", "wait (threading.py")
#: the forwarding path's parts, by a fragment of their frame names
PARTS = {
    "receive: aioice datagram_received": "StunProtocol.datagram_received",
    "receive: DTLS transport _recv_next": "RTCDtlsTransport._recv_next",
    "receive: SRTP unprotect": "unprotect (",
    "receive: RTP parse": "parse_rtp (",
    "receive: RtpPacket.parse": "RtpPacket.parse",
    "receive: tap handle_rtp": "handle_rtp (server/media/aiortc_adapter.py",
    "receive: synchronous path": "receive_synchronously.<locals>.receive (",
    "producer: on_packet": "Producer.on_packet",
    "consumer: forward": "Consumer.forward",
    "writer: OutboundRtp.send": "OutboundRtp.send",
    "writer: SRTP protect": "protect_rtp (",
    "writer: SRTP protect (pylibsrtp)": "Session.protect (",
    "writer: sendto": "sendto",
    "recorder: RecordedTrack.send": "RecordedTrack.send",
    "recorder: writer thread": "_write_reserved",
    "rtcp: receive": "_handle_rtcp_data",
    "rtcp: sender reports": "_run_rtcp",
}
_FRAME = re.compile(r"^(.*) \(([^()]*)\)$")


def _name(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    func, where = m.groups()
    return f"{func} ({where.split(':')[0]})"


def summarize(path: Path, top: int) -> str:
    total = idle = 0
    self_time: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        total += count
        if any(idle_frame in f for f in frames for idle_frame in IDLE_FRAMES):
            idle += count
            continue
        self_time[_name(frames[-1])] += count
        for part, fragment in PARTS.items():
            if any(fragment in f for f in frames):
                parts[part] += count
    busy = max(1, total - idle)
    lines = [f"{path}: {total} samples, {busy} busy ({100 * busy / max(1, total):.0f}%)", "",
             "inclusive, % of busy samples:"]  # fmt: skip
    lines += [f"  {100 * parts[p] / busy:5.1f}  {p}" for p in PARTS if parts[p]]
    lines += ["", f"self, top {top}, % of busy samples:"]
    lines += [f"  {100 * c / busy:5.1f}  {name}" for name, c in self_time.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    print(summarize(args.profile, args.top))


if __name__ == "__main__":
    main()
