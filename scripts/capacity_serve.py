"""The server side of ``bench_capacity.py``: the real CLI and app, plus
the probes that time whispers and cues inside the server, started by the
benchmark as ``capacity_serve.py --control-dir DIR [--gc-freeze]
[--uvloop] -- <serve arguments>``. SIGUSR1 starts a window, SIGUSR2 ends
it and writes the window's numbers to ``DIR/stats.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent)]

import benchlib  # noqa: E402
from bench_bug_in_ear import LoopLag, ServerProbe  # noqa: E402


class CueProbe:
    """Times cues inside a server process at its Engine.IO sockets: a
    coach's cue packet received, the cue packet queued for a teacher."""

    def __init__(self) -> None:
        self.recording = False
        self.received: dict[str, int] = {}
        self.sent: dict[str, int] = {}

    @staticmethod
    def _cue_text(data: Any) -> str | None:
        if not isinstance(data, str) or '"cue"' not in data[:40]:
            return None
        try:
            message = json.loads(data[data.index("[") :])
        except ValueError:
            return None
        if isinstance(message, list) and message and message[0] == "cue" and len(message) > 1:
            text = message[1].get("text") if isinstance(message[1], dict) else None
            return text if isinstance(text, str) else None
        return None

    def install(self) -> None:
        from engineio import packet as eio_packet
        from engineio.async_socket import AsyncSocket

        probe = self
        receive, send = AsyncSocket.receive, AsyncSocket.send

        async def on_receive(sock: Any, pkt: Any) -> Any:
            if probe.recording and pkt.packet_type == eio_packet.MESSAGE:
                text = probe._cue_text(pkt.data)
                if text is not None:
                    probe.received.setdefault(text, time.perf_counter_ns())
            return await receive(sock, pkt)

        async def on_send(sock: Any, pkt: Any) -> Any:
            if probe.recording and pkt.packet_type == eio_packet.MESSAGE:
                text = probe._cue_text(pkt.data)
                if text is not None:
                    probe.sent.setdefault(text, time.perf_counter_ns())
            return await send(sock, pkt)

        AsyncSocket.receive = on_receive  # type: ignore[method-assign]
        AsyncSocket.send = on_send  # type: ignore[method-assign]


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def serve(control_dir: Path, serve_argv: list[str], gc_freeze: bool, use_uvloop: bool) -> int:
    from server.cli import build_config, build_parser, configure_logging
    from server.serve import serve as serve_app

    cli = build_parser().parse_args(serve_argv)
    config = build_config(cli)
    configure_logging(config.log_level)
    probe, cues, lag = ServerProbe(), CueProbe(), LoopLag()
    probe.install()
    cues.install()

    def write(name: str, data: dict[str, Any]) -> None:
        tmp = control_dir / (name + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, control_dir / name)

    def start() -> None:
        probe.reset()
        probe.recording = cues.recording = True
        cues.received, cues.sent = {}, {}
        lag.begin()
        write("started.json", {"ok": True})

    def media_counts() -> dict[str, int]:
        import server.media.producer as producer_module

        counts = {"video_producers": 0, "video_received": 0, "video_forwarded": 0,
                  "video_dropped": 0, "video_waiting_keyframe": 0}  # fmt: skip
        for obj in gc.get_objects():
            if isinstance(obj, producer_module.Producer) and obj.kind == "video" and not obj.closed:
                counts["video_producers"] += 1
                counts["video_received"] += obj.packets_received
                for c in obj.consumers.values():
                    counts["video_forwarded"] += c.packets_sent
                    counts["video_dropped"] += c.packets_dropped
                    counts["video_waiting_keyframe"] += int(c.current_layer is None)
        return counts

    def stop() -> None:
        probe.recording = cues.recording = False
        write(
            "stats.json",
            {
                **probe.report(),
                "whisper_path_us": [round(v / 1000, 1) for v in probe.path_ns],
                "cue_received": cues.received,
                "cue_sent": cues.sent,
                "loop_lag_ms": [round(v / 1e6, 3) for v in lag.lags_ns],
                "rss_kb": rss_kb(os.getpid()),
                "media": media_counts(),
            },
        )

    async def main() -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, start)
        loop.add_signal_handler(signal.SIGUSR2, stop)
        lag.start()
        if gc_freeze:  # the experiment: once start-up is done
            loop.call_later(2.0, lambda: (gc.collect(), gc.freeze()))
        try:
            return await serve_app(config, reuse_port=cli.reuse_port)
        finally:
            await lag.stop()

    if use_uvloop:
        import uvloop

        return int(uvloop.run(main()))
    return asyncio.run(main())


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--control-dir", required=True)
    parser.add_argument("--gc-freeze", action="store_true")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("serve_argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    benchlib.configure_logging(False)
    serve_argv = [a for a in args.serve_argv if a != "--"]
    return serve(Path(args.control_dir), serve_argv, args.gc_freeze, args.uvloop)


if __name__ == "__main__":
    sys.exit(main())
