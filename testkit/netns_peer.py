"""A Sidecoach participant in a process of its own, so that it can run inside
a network namespace (testkit/netns.py) while the test drives it: a real aiortc
peer (testkit/peers.py) that joins, may publish a synthetic camera or a
whisper (a 440 Hz tone, push-to-talk held), decodes what it receives, and
answers line commands on stdin with JSON lines on stdout.

    python -m testkit.netns_peer --url http://198.18.1.1:8080 --token T \\
        --ice-ip 198.18.1.2 --camera

prints ``{"event": "joined"}``, then ``{"event": "published"}`` once the
server forwards the camera (or the whisper); the command ``stats`` prints
``{"event": "stats", "inbound": {kind: {"packetsReceived", "packetsLost"}},
"video": {...}}`` (aiortc's getStats summed per kind; ``video`` is the
decoded classroom camera since the previous ``stats``: frames, size, fps
and freezes, see ``freeze_metrics``); ``quit`` (or end of input) leaves.

``PeerAgent`` is the driving side: it starts the process in a namespace and
reads its answers without blocking the test's event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

from testkit.netns import Namespace, Netlab
from testkit.procs import Proc


async def inbound_stats(pc: Any) -> dict[str, dict[str, int]]:
    """packetsReceived / packetsLost of every inbound RTP stream, per kind."""
    totals: dict[str, dict[str, int]] = {}
    report = await pc.getStats()
    for stats in report.values():
        if stats.type == "inbound-rtp":
            t = totals.setdefault(stats.kind, {"packetsReceived": 0, "packetsLost": 0})
            t["packetsReceived"] += stats.packetsReceived
            t["packetsLost"] += max(0, stats.packetsLost)
    return totals


def freeze_metrics(times: list[float], window_s: float) -> dict[str, Any]:
    """Frame-gap statistics of decode times ``times`` (monotonic seconds):
    freezes as WebRTC counts them (a gap longer than max(3 x mean frame
    interval, mean + 150 ms)), their count and total frozen ms."""
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    if not gaps:
        return {"frames": len(times), "fps": 0.0, "longest_gap_ms": None, "freezes": None,
                "frozen_ms": None}  # fmt: skip
    mean = statistics.fmean(gaps)
    limit = max(3 * mean, mean + 0.150)
    frozen = [g for g in gaps if g > limit]
    return {
        "frames": len(times),
        "fps": round(len(times) / window_s, 1) if window_s > 0 else 0.0,
        "longest_gap_ms": round(max(gaps) * 1000, 1),
        "freezes": len(frozen),
        "frozen_ms": round(sum(frozen) * 1000, 1),
        "freeze_limit_ms": round(limit * 1000, 1),
    }


def _say(**data: Any) -> None:
    print(json.dumps(data), flush=True)


async def _run(args: argparse.Namespace) -> int:
    # imported here: the module is also imported by the driving side
    from testkit.peers import Participant, PatternVideoTrack, ToneTrack, wait_for

    peer = Participant(args.url, args.token, ice_ips=(args.ice_ip,))
    try:
        await peer.join()
        _say(event="joined", participantId=peer.joined["participantId"])
        if args.camera:
            producer_id = await peer.publish(PatternVideoTrack(args.width, args.height), "camera")
            await wait_for(lambda: peer.published(producer_id), timeout=30)
            _say(event="published", producerId=producer_id)
        if args.whisper:
            producer_id = await peer.publish(ToneTrack(), "whisper")
            await wait_for(lambda: peer.published(producer_id), timeout=30)
            reply = await peer.call("whisper-start", {})
            _say(event="published", producerId=producer_id, whispering=reply.get("ok"))
        loop = asyncio.get_running_loop()
        since = time.monotonic()
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if line in ("", "quit"):
                return 0
            if line == "stats":
                now = time.monotonic()
                video: dict[str, Any] = {}
                cameras = peer.tracks(source="camera")
                if cameras:
                    cam = cameras[0]
                    times = [t for t in cam.frame_times if since <= t <= now]
                    video = {**freeze_metrics(times, now - since), "width": cam.width,
                             "height": cam.height, "total_frames": cam.frames}  # fmt: skip
                _say(event="stats", t=now, inbound=await inbound_stats(peer.pc), video=video)
                since = now
    finally:
        await peer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--ice-ip", required=True, help="local address for ICE")
    parser.add_argument("--camera", action="store_true", help="publish a synthetic camera")
    parser.add_argument("--whisper", action="store_true", help="publish a whisper, talk all along")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    return asyncio.run(_run(parser.parse_args()))


class PeerAgent:
    """Drives a ``testkit.netns_peer`` process started in ``ns``."""

    def __init__(
        self,
        lab: Netlab,
        ns: Namespace,
        name: str,
        *,
        url: str,
        token: str,
        ice_ip: str,
        camera: bool = False,
        camera_size: tuple[int, int] = (320, 240),
        whisper: bool = False,
    ) -> None:
        args = [
            sys.executable, "-m", "testkit.netns_peer", "--url", url, "--token", token,
            "--ice-ip", ice_ip,
        ]  # fmt: skip
        if camera:
            args += ["--camera", "--width", str(camera_size[0]), "--height", str(camera_size[1])]
        if whisper:
            args.append("--whisper")
        self.proc: Proc = lab.popen(ns, args, name, stdin_pipe=True)
        self._stats_seen = 0

    def _events(self, event: str) -> list[dict[str, Any]]:
        found = []
        for line in self.proc.output().splitlines():
            if line.startswith("{"):
                data = json.loads(line)
                if data.get("event") == event:
                    found.append(data)
        return found

    async def wait_event(self, event: str, count: int = 1, timeout: float = 30) -> dict[str, Any]:
        """The ``count``-th ``event`` line (bounded wait; fails with the log)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self._events(event)
            if len(found) >= count:
                return found[count - 1]
            if self.proc.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"peer agent: no {event!r} #{count}:\n{self.proc.output()[-3000:]}"
                )
            await asyncio.sleep(0.05)

    async def stats(self) -> dict[str, dict[str, int]]:
        """Inbound RTP counters of the agent's peer connection, per kind."""
        return dict((await self.report())["inbound"])

    async def report(self) -> dict[str, Any]:
        """The agent's ``stats`` line: ``inbound`` counters per kind, and
        ``video``: the classroom camera decoded since the last report."""
        self.proc.send_line("stats")
        self._stats_seen += 1
        return await self.wait_event("stats", self._stats_seen, timeout=10)

    async def wait_decoding(self, frames: int = 15, timeout: float = 30) -> None:
        """Until the agent has decoded ``frames`` camera frames within 2 s
        (bounded; fails with the last report)."""
        deadline = time.monotonic() + timeout
        await self.report()  # a window starts
        while True:
            await asyncio.sleep(2.0)
            report = await self.report()
            if (report["video"] or {}).get("frames", 0) >= frames:
                return
            assert time.monotonic() < deadline, f"the agent is not decoding: {report}"

    def stop(self) -> None:
        self.proc.stop()


if __name__ == "__main__":
    sys.exit(main())
