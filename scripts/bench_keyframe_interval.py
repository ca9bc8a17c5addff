#!/usr/bin/env python3
"""What asking a recorded camera for a keyframe every N seconds costs
(``Limits.recording_keyframe_interval_s``): a real publisher records for a
while per interval, and the recorded camera file tells the bitrate, the
keyframes and their size against the frames between them.

    .venv/bin/python scripts/bench_keyframe_interval.py [--seconds 30]
        [--publisher aiortc|chromium|both] [--intervals off,4,2,1]

Publishers: aiortc (a 640x360 moving pattern, its CBR encoder at 500
kbit/s, no REMB) and Chromium (its fake 1280x720 camera with simulcast; the
recorded layer is h). Run inside ``unshare -n`` as scripts/test does (the
server listens on 127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402

from server.core.config import Limits  # noqa: E402
from testkit.peers import PatternVideoTrack, wait_for  # noqa: E402
from testkit.server import LiveServer, make_config, running_server  # noqa: E402

OFF_S = 3600.0


def camera_stats(path: Path) -> dict[str, float]:
    sizes: list[tuple[bool, int, float]] = []
    with av.open(str(path)) as f:
        stream = f.streams.video[0]
        tb = stream.time_base
        assert tb is not None
        for p in f.demux(stream):
            if p.size and p.pts is not None:
                sizes.append((bool(p.is_keyframe), p.size, float(p.pts * tb)))
    seconds = sizes[-1][2] - sizes[0][2]
    keys = [s for k, s, _ in sizes if k]
    deltas = [s for k, s, _ in sizes if not k]
    return {
        "kbps": sum(s for _, s, _ in sizes) * 8 / seconds / 1000,
        "keyframes": len(keys),
        "key_kb": sum(keys) / len(keys) / 1000,
        "delta_kb": sum(deltas) / max(1, len(deltas)) / 1000,
        "seconds": seconds,
    }


async def record(server: LiveServer, seconds: float, publish: Any) -> Path:
    session = await server.create_session()
    async with publish(server, session.id):
        live = await _live(server, session.id)
        start = live.clock.now_ms()
        await wait_for(lambda: live.clock.now_ms() - start >= seconds * 1000, seconds + 30, 0.5)
        await server.manager.end_session(session.id)
    (directory,) = list((server.config.recordings_dir / session.id).iterdir())
    (camera,) = [p for p in directory.iterdir() if "-camera-" in p.name]
    return camera


async def _live(server: LiveServer, session_id: str) -> Any:
    await wait_for(lambda: session_id in server.manager.sessions, 30)
    live = server.manager.sessions[session_id]
    await wait_for(lambda: live.recording.state == "recording", 60)
    return live


class AiortcTeacher:
    def __init__(self, server: LiveServer, session_id: str) -> None:
        self.teacher = server.participant(session_id, "teacher")

    async def __aenter__(self) -> None:
        await self.teacher.join()
        await self.teacher.publish(PatternVideoTrack(640, 360), "camera")

    async def __aexit__(self, *exc: object) -> None:
        await self.teacher.close()


class ChromiumTeacher:
    def __init__(self, server: LiveServer, session_id: str) -> None:
        self.server, self.session_id = server, session_id
        self._cm: Any = None

    async def __aenter__(self) -> None:
        from testkit.browser import CHROMIUM, launched_chromium, teacher_gone_live

        self._cm = launched_chromium(CHROMIUM)
        browser = await self._cm.__aenter__()
        token = self.server.invite(self.session_id, "teacher")
        await teacher_gone_live(browser, self.server.url, token)

    async def __aexit__(self, *exc: object) -> None:
        await self._cm.__aexit__(None, None, None)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--publisher", choices=["aiortc", "chromium", "both"], default="both")
    parser.add_argument("--intervals", default="off,4,2,1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    publishers = ["aiortc", "chromium"] if args.publisher == "both" else [args.publisher]
    intervals = [OFF_S if i == "off" else float(i) for i in args.intervals.split(",")]
    for name in publishers:
        publish = AiortcTeacher if name == "aiortc" else ChromiumTeacher
        base: float | None = None
        for interval in intervals:
            with tempfile.TemporaryDirectory() as tmp:
                config = make_config(Path(tmp))
                config = replace(config, limits=Limits(recording_keyframe_interval_s=interval))
                async with running_server(config) as server:
                    stats = camera_stats(await record(server, args.seconds, publish))
            base = stats["kbps"] if base is None else base
            label = "off" if interval == OFF_S else f"{interval:g} s"
            print(
                f"{name:8} interval {label:>5}: {stats['kbps']:7.1f} kbit/s"
                f" ({(stats['kbps'] / base - 1) * 100:+5.1f} %), {stats['keyframes']:3.0f}"
                f" keyframes in {stats['seconds']:.0f} s, keyframe {stats['key_kb']:.1f} kB,"
                f" other frames {stats['delta_kb']:.2f} kB",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
