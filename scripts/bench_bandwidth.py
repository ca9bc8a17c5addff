"""Bandwidth benchmark: the picture a coach on a 300 kbit/s link gets,
against a coach on a clean link in the same lesson, with the recording on.

Topology (testkit/netns.py; re-runs itself under ``unshare -n`` like
bench_network.py):

    this (private) namespace                      home namespace
    Sidecoach (in this process)       --veth--    thin coach: Chromium page
    teacher: Chromium page (fake 720p             (its downlink limited by
     camera, VP8 simulcast l/m/h)                  tc tbf to --rate kbit/s)
    clean coach: aiortc peer (decodes)

Windows, one after the other on the same lesson:

* ``clean``: nobody is limited;
* ``thin``: the home link is limited to ``--rate`` kbit/s; measured once the
  thin coach's Consumer has moved to a smaller layer (how long that took
  is reported);
* ``recovered``: the limit is lifted; how long until the thin coach is
  back on the top layer.

Per window and coach: the simulcast layer the server forwards (its
Consumer), decoded frames per second and their size (the thin coach's from
Chromium's getStats, the clean coach's from its decoder), and the layer the
Recorder takes. Ratios are thin / clean. ``--json PATH`` writes all numbers;
``--quick`` is a short smoke run.

    .venv/bin/python scripts/bench_bandwidth.py [--quick] [--json out.json] [--rate 300]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent)]  # benchlib; the server and tests packages

import benchlib  # noqa: E402
from bench_network import reexec_in_private_netns  # noqa: E402
from benchlib import fmt  # noqa: E402

from server.media.producer import Producer  # noqa: E402
from testkit.browser import (  # noqa: E402
    CHROMIUM,
    KEEP_PEER_CONNECTIONS,
    Tab,
    launched_chromium,
    new_tab,
    teacher_gone_live,
)
from testkit.netns import Link, Netlab, unavailable_reason  # noqa: E402
from testkit.peers import Participant, wait_for  # noqa: E402
from testkit.server import LiveServer, make_config, running_server  # noqa: E402

#: a coach page's classroom video: frames decoded, and their size
DECODED = """async () => {
    let out = {decoded: 0, width: 0, height: 0};
    for (const pc of window.__pcs) {
        (await pc.getStats()).forEach((s) => {
            if (s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded) {
                out = {decoded: s.framesDecoded, width: s.frameWidth || 0,
                       height: s.frameHeight || 0};
            }
        });
    }
    return out;
}"""
#: how long to wait for a layer change before giving up on a window
SWITCH_WAIT_S = 90.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    benchlib.add_quick_and_json_args(parser, "5 s windows (a smoke run)")
    parser.add_argument("--rate", type=int, default=300, help="thin link, kbit/s (default 300)")
    parser.add_argument("--seconds", type=float, default=15.0, help="measuring window (s)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 5.0
    return args


def layer_of(producer: Producer, participant_id: str) -> str | None:
    for consumer in producer.consumers.values():
        if consumer.participant_id == participant_id and consumer.current_layer is not None:
            return producer.layers[consumer.current_layer].rid
    return None


async def wait_layer(producer: Producer, pid: str, wanted: set[str]) -> float | None:
    """Seconds until ``pid``'s consumer forwards one of ``wanted`` (None: not
    within SWITCH_WAIT_S)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < SWITCH_WAIT_S:
        if layer_of(producer, pid) in wanted:
            return round(time.monotonic() - t0, 2)
        await asyncio.sleep(0.1)
    return None


async def window(
    name: str, seconds: float, producer: Producer, thin: Tab, thin_id: str, clean: Participant
) -> dict[str, Any]:
    video = clean.tracks(source="camera")[0]
    page0, frames0, t0 = await thin.page.evaluate(DECODED), video.frames, time.monotonic()
    layers: dict[str, dict[str, int]] = {"thin": {}, "clean": {}, "recorder": {}}
    who = {"thin": thin_id, "clean": clean.joined["participantId"], "recorder": "recorder"}
    while time.monotonic() - t0 < seconds:  # which layer, sampled every 0.5 s
        for key, pid in who.items():
            rid = layer_of(producer, pid) or "-"
            layers[key][rid] = layers[key].get(rid, 0) + 1
        await asyncio.sleep(0.5)
    page1, frames1, t1 = await thin.page.evaluate(DECODED), video.frames, time.monotonic()
    span = t1 - t0
    return {
        "window": name,
        "seconds": round(span, 1),
        "thin": {"fps": round((page1["decoded"] - page0["decoded"]) / span, 1),
                 "width": page1["width"], "height": page1["height"], "layers": layers["thin"]},
        "clean": {"fps": round((frames1 - frames0) / span, 1), "width": video.width,
                  "height": video.height, "layers": layers["clean"]},
        "recorder_layers": layers["recorder"],
    }  # fmt: skip


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="sidecoach-bench-bandwidth-"))
    report: dict[str, Any] = {
        "machine": benchlib.machine_info(), "rate_kbit": args.rate, "window_s": args.seconds,
        "windows": [],
    }  # fmt: skip
    try:
        with Netlab(tmp) as lab:
            home = lab.namespace("home")
            link = lab.link(None, home, subnet=13)
            config = make_config(tmp / "data", host=link.a_ip, ice_listen_ips=(link.a_ip,))
            async with running_server(config) as server:
                await _lesson(args, server, home, link, tmp, report)
    except Exception as exc:  # reported, and the exit status says so
        report["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    add_ratios(report)
    return report


async def _lesson(
    args: argparse.Namespace, server: LiveServer, home: Any, link: Link, tmp: Path,
    report: dict[str, Any],
) -> None:  # fmt: skip
    session = await server.create_session(recording=True)
    origin = server.url
    flags = [f"--unsafely-treat-insecure-origin-as-secure={origin}"]
    async with (
        launched_chromium(CHROMIUM, flags) as school,
        launched_chromium(home.wrapper(str(CHROMIUM), tmp), flags) as at_home,
    ):
        await teacher_gone_live(school, origin, server.invite(session.id, "teacher"))
        thin = await new_tab(
            at_home, f"{origin}/join?token={server.invite(session.id, 'coach')}", "thin",
            init=KEEP_PEER_CONNECTIONS,
        )  # fmt: skip
        await thin.wait("document.querySelector('video.remote-video')?.videoWidth > 0", 60)
        thin_id = await thin.js("sidecoach.participantId")
        clean = server.participant(session.id, "coach")
        clean.ice_ips = (link.a_ip,)
        await clean.join()
        try:
            await wait_for(lambda: len(clean.tracks(source="camera")) == 1, timeout=30)
            live = server.manager.get(session.id)
            assert live is not None
            producer = next(p for p in live.router.producers.values() if p.info.source == "camera")
            report["thin_to_top_s"] = await wait_layer(producer, thin_id, {"h"})
            report["windows"].append(
                await window("clean", args.seconds, producer, thin, thin_id, clean)
            )
            link.shape("down", rate_kbit=args.rate)
            report["switch_down_s"] = await wait_layer(producer, thin_id, {"l", "m"})
            report["windows"].append(
                await window(f"{args.rate} kbit/s", args.seconds, producer, thin, thin_id, clean)
            )
            link.shape("down")
            report["back_to_top_s"] = await wait_layer(producer, thin_id, {"h"})
            report["windows"].append(
                await window("recovered", args.seconds, producer, thin, thin_id, clean)
            )
            report["layers"] = {  # sizes as read from their keyframes
                layer.rid: f"{layer.width}x{layer.height}" for layer in producer.layers
            }
        finally:
            link.shape("down")
            await clean.close()


def add_ratios(report: dict[str, Any]) -> None:
    for w in report.get("windows", []):
        thin, clean = w["thin"], w["clean"]
        w["ratios_thin_vs_clean"] = {
            key: round(thin[key] / clean[key], 2) if clean.get(key) else None
            for key in ("fps", "width")
        }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"Bandwidth bench: a coach limited to {report['rate_kbit']} kbit/s vs a clean coach,"
        f" teacher = Chromium simulcast {report.get('layers', {})}, recording on,"
        f" {report['window_s']:g} s windows",
        "",
        f"{'window':<12} {'thin coach: layer  fps   size':<34}"
        f" {'clean coach: layer  fps   size':<34} {'recorder':<10} thin/clean fps, width",
    ]
    for w in report.get("windows", []):
        t, c, r = w["thin"], w["clean"], w["ratios_thin_vs_clean"]
        lines.append(
            f"{w['window']:<12} {_layers(t['layers']):<16} {fmt(t['fps'])} "
            f"{t['width']:>5}x{t['height']:<5}  {_layers(c['layers']):<16} {fmt(c['fps'])} "
            f"{c['width']:>5}x{c['height']:<5}  {_layers(w['recorder_layers']):<10}"
            f" {fmt(r['fps'], '.2f')}, {fmt(r['width'], '.2f')}"
        )
    lines.append(
        f"Thin coach: on the top layer {fmt(report.get('thin_to_top_s'), '.1f')} s after joining;"
        f" moved down {fmt(report.get('switch_down_s'), '.1f')} s after the limit;"
        f" back on top {fmt(report.get('back_to_top_s'), '.1f')} s after it was lifted"
    )
    if "error" in report:
        lines.append(f"ERROR: {report['error']}")
    return "\n".join(lines)


def _layers(counts: dict[str, int]) -> str:
    """``{"h": 28, "m": 2}`` -> ``h 93% m 7%``."""
    total = sum(counts.values()) or 1
    return " ".join(f"{rid} {100 * n // total}%" for rid, n in sorted(counts.items()))


def main() -> int:
    args = parse_args()
    reexec_in_private_netns()
    benchlib.configure_logging(args.verbose)
    reason = unavailable_reason()
    if reason is not None:
        print(f"bench_bandwidth: network namespaces unavailable: {reason}", file=sys.stderr)
        return 2
    if not CHROMIUM.exists():
        print(f"bench_bandwidth: {CHROMIUM} is not installed", file=sys.stderr)
        return 2
    report = benchlib.run_and_report(args, bench, render)
    return 1 if "error" in report else 0


if __name__ == "__main__":
    sys.exit(main())
