"""Network benchmark: what a coach sees and what a teacher hears when the
teacher's link loses packets, against a clean link in the same invocation.

Topology (testkit/netns.py; the script re-runs itself under ``unshare -n``
unless it already is in a private network namespace, so nothing touches the
machine's network):

    classroom namespace                       this (private) namespace
    teacher: aiortc peer process  --veth--    Sidecoach server (own process)
    (testkit/netns_peer.py, 640x480             coach: aiortc peer in this process,
     synthetic camera, aiortc VP8)            decoding, whispering (440 Hz tone,
                                              push-to-talk held)

Scenarios, one after the other on the same session (each with a settle
time, then a measuring window):

* ``baseline``: clean link;
* ``uplink N%``: N % of the teacher's outgoing IP packets dropped (the
  classroom's camera stream to the server): the server NACKs, the teacher
  retransmits;
* ``downlink N%``: N % of the packets to the teacher dropped (the whisper
  to the teacher's earpiece; Opus has no retransmission);
* ``down 3%+jitter``: 3 % loss and each packet to the teacher held
  50 ± 50 ms (reordering them), the whisper on a bad school network;
* ``cut 5 s`` (``--cuts`` times): the teacher's link drops everything for
  ``--cut`` seconds; how long after it ends the coach decodes the
  classroom again, and the teacher receives the whisper again.

Measured per window:

* coach video **freeze time** from the decode time of every frame: longest
  gap between decoded frames, and freezes as WebRTC counts them (a gap
  longer than max(3 x mean frame interval, mean + 150 ms)), their count
  and total frozen ms; decoded fps;
* video **recovery**: packets the link dropped on the uplink (nftables
  counter) vs packets the coach still misses (its RTCP receiver stats):
  recovered = dropped - still missing;
* whisper **loss** at the teacher (its receiver stats) vs packets the link
  dropped on the downlink.

Ratios are against the baseline window. ``--json PATH`` writes all numbers;
``--quick`` is a short smoke run.

    .venv/bin/python scripts/bench_network.py [--quick] [--json out.json] [--loss 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent)]  # benchlib; the server and tests packages

import benchlib  # noqa: E402
from benchlib import ROOT, ServerProcess, fmt  # noqa: E402

from testkit.netns import Link, Netlab, in_private_netns, unavailable_reason  # noqa: E402
from testkit.netns_peer import PeerAgent, freeze_metrics, inbound_stats  # noqa: E402
from testkit.peers import Participant, ToneTrack, wait_for  # noqa: E402

SECRET = benchlib.BENCH_SECRET
#: the whisper-on-a-bad-network window: this loss, and each packet held
#: JITTER_MS ± JITTER_MS (testkit/netns_delay.py)
JITTER_LOSS_PCT = 3.0
JITTER_MS = 50.0
#: after a cut, how long to wait for video and whisper to come back
CUT_WAIT_S = 30.0
#: after a cut, frames are watched this long; a gap longer than
#: STEADY_GAP_S is a freeze (the picture is steady after the last one)
STEADY_WATCH_S = 8.0
STEADY_GAP_S = 0.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    benchlib.add_quick_and_json_args(parser, "4 s windows (a smoke run)")
    parser.add_argument("--loss", type=float, default=5.0, help="loss in %% (default 5)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window (s)")
    parser.add_argument("--settle", type=float, default=3.0, help="settle before a window (s)")
    parser.add_argument("--width", type=int, default=640, help="teacher camera width")
    parser.add_argument("--height", type=int, default=480, help="teacher camera height")
    parser.add_argument("--cut", type=float, default=5.0, help="link cut length (s)")
    parser.add_argument("--cuts", type=int, default=3, help="how many cuts (default 3)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.settle, args.cuts = 4.0, 1.0, 1
    return args


# ------------------------------------------------------------ metrics ----


def delta(
    after: dict[str, dict[str, int]], before: dict[str, dict[str, int]], kind: str
) -> dict[str, int]:
    a = after.get(kind, {"packetsReceived": 0, "packetsLost": 0})
    b = before.get(kind, {"packetsReceived": 0, "packetsLost": 0})
    return {k: a[k] - b[k] for k in ("packetsReceived", "packetsLost")}


# -------------------------------------------------------------- bench ----


async def measure(
    name: str,
    direction: str | None,
    shaping: dict[str, float],
    args: argparse.Namespace,
    link: Link,
    coach: Participant,
    teacher: PeerAgent,
) -> dict[str, Any]:
    """One window with ``direction`` shaped by ``shaping`` (Link.shape's
    keywords: loss_pct, delay_ms, jitter_ms)."""
    link.restore()
    if direction is not None:
        link.shape(direction, **shaping)  # type: ignore[arg-type]
    await asyncio.sleep(args.settle)
    video = coach.tracks(source="camera")[0]
    coach_before, teacher_before = await inbound_stats(coach.pc), await teacher.stats()
    dropped_before = {d: link.dropped(d) for d in ("up", "down")}  # type: ignore[arg-type]
    t0 = time.monotonic()
    await asyncio.sleep(args.seconds)
    t1 = time.monotonic()
    coach_after, teacher_after = await inbound_stats(coach.pc), await teacher.stats()
    dropped = {d: link.dropped(d) - dropped_before[d] for d in ("up", "down")}  # type: ignore[arg-type]
    times = [t for t in video.frame_times if t0 <= t <= t1]
    v = delta(coach_after, coach_before, "video")
    w = delta(teacher_after, teacher_before, "audio")
    whisper_expected = w["packetsReceived"] + w["packetsLost"]
    return {
        "scenario": name,
        "direction": direction,
        "loss_pct": shaping.get("loss_pct", 0.0) if direction else 0.0,
        "jitter_ms": shaping.get("jitter_ms", 0.0) if direction else 0.0,
        "window_s": round(t1 - t0, 2),
        "video": {
            **freeze_metrics(times, t1 - t0),
            "packets_received": v["packetsReceived"],
            "dropped_on_uplink": dropped["up"],
            "still_missing_at_coach": v["packetsLost"],
            "recovered": max(0, dropped["up"] - v["packetsLost"]) if direction == "up" else None,
        },
        "whisper": {
            "packets_received": w["packetsReceived"],
            "lost_at_teacher": w["packetsLost"],
            "loss_pct": round(100 * w["packetsLost"] / whisper_expected, 2)
            if whisper_expected
            else None,
            "dropped_on_downlink": dropped["down"],
        },
    }


async def measure_cut(
    args: argparse.Namespace, link: Link, coach: Participant, teacher: PeerAgent
) -> dict[str, Any]:
    """Cut the teacher's link (both ways) for ``--cut`` seconds; after it
    comes back, how long until the coach decodes the classroom again and
    the teacher receives the whisper again (polled every 20 ms)."""
    link.restore()
    await asyncio.sleep(args.settle)
    video = coach.tracks(source="camera")[0]
    link.cut()
    cut_at = time.monotonic()
    await asyncio.sleep(args.cut)
    whisper_before = (await teacher.stats()).get("audio", {}).get("packetsReceived", 0)
    link.restore()
    back = time.monotonic()
    video_s = whisper_s = None
    while (video_s is None or whisper_s is None) and time.monotonic() < back + CUT_WAIT_S:
        if video_s is None:
            after = [t for t in list(video.frame_times)[-30:] if t > back]
            video_s = after[0] - back if after else None
        if whisper_s is None:
            audio = (await teacher.stats()).get("audio", {})
            if audio.get("packetsReceived", 0) > whisper_before:
                whisper_s = time.monotonic() - back
        await asyncio.sleep(0.02)
    # the picture is steady again at the end of the last freeze after the
    # cut (a gap > STEADY_GAP_S between decoded frames) within STEADY_WATCH_S
    await asyncio.sleep(max(0.0, back + STEADY_WATCH_S - time.monotonic()))
    before_cut = [t for t in video.frame_times if t <= cut_at]
    after_back = [t for t in video.frame_times if back < t <= back + STEADY_WATCH_S]
    frozen = (after_back[0] - before_cut[-1]) if before_cut and after_back else None
    steady = after_back[0] if after_back else None
    for a, b in zip(after_back, after_back[1:], strict=False):
        if b - a > STEADY_GAP_S:
            steady = b
    return {
        "scenario": f"cut {args.cut:g} s",
        "cut_s": args.cut,
        "video_back_after_s": round(video_s, 3) if video_s is not None else None,
        "video_steady_after_s": round(steady - back, 3) if steady is not None else None,
        "whisper_back_after_s": round(whisper_s, 3) if whisper_s is not None else None,
        "coach_frozen_s": round(frozen, 3) if frozen is not None else None,
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="sidecoach-bench-network-"))
    report: dict[str, Any] = {
        "machine": benchlib.machine_info(), "loss_pct": args.loss, "window_s": args.seconds,
        "camera": f"{args.width}x{args.height}", "runs": [],
    }  # fmt: skip
    try:
        with Netlab(tmp) as lab:
            classroom = lab.namespace("classroom")
            link = lab.link(None, classroom, subnet=3)
            port = benchlib.free_port()
            server = ServerProcess(
                "sidecoach",
                [sys.executable, "-m", "server", "serve", "--host", link.a_ip, "--port",
                 str(port), "--data-dir", str(tmp / "data"), "--ice-listen-ips", link.a_ip,
                 "--log-level", "WARNING"],
                benchlib.sidecoach_env(SECRET), tmp / "server.log", f"http://{link.a_ip}:{port}",
            )  # fmt: skip
            await server.start()
            try:
                report["runs"], report["cuts"] = await _scenarios(
                    args, lab, classroom, link, server.url
                )
            finally:
                server.stop()
    except Exception as exc:  # reported, and the exit status says so
        report["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    add_ratios(report)
    return report


async def _scenarios(
    args: argparse.Namespace, lab: Netlab, classroom: Any, link: Link, url: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async with benchlib.admin_client(SECRET, ttl_s=3600, timeout_s=10) as http:
        session_id = await benchlib.create_session(
            http, url, "Network bench", "Ms. Rivera", recording=False
        )
    teacher = PeerAgent(
        lab, classroom, "teacher", url=url, token=benchlib.invite(SECRET, session_id, "teacher"),
        ice_ip=link.b_ip, camera=True, camera_size=(args.width, args.height),
    )  # fmt: skip
    coach = Participant(url, benchlib.invite(SECRET, session_id, "coach"), ice_ips=(link.a_ip,))
    try:
        await teacher.wait_event("published")
        await coach.join()
        await coach.publish(ToneTrack(), "whisper")
        await wait_for(lambda: len(coach.tracks(source="camera")) == 1, timeout=20)
        await wait_for(lambda: coach.tracks(source="camera")[0].frames > 30, timeout=30)
        reply = await coach.call("whisper-start", {})
        if not reply.get("ok"):
            raise RuntimeError(f"whisper-start refused: {reply}")
        runs = []
        jitter = {"loss_pct": JITTER_LOSS_PCT, "delay_ms": JITTER_MS, "jitter_ms": JITTER_MS}
        for name, direction, shaping in (
            ("baseline", None, {}),
            (f"uplink {args.loss:g}%", "up", {"loss_pct": args.loss}),
            (f"downlink {args.loss:g}%", "down", {"loss_pct": args.loss}),
            (f"down {JITTER_LOSS_PCT:g}%+jitter", "down", jitter),
        ):
            runs.append(await measure(name, direction, shaping, args, link, coach, teacher))
        cuts = [await measure_cut(args, link, coach, teacher) for _ in range(args.cuts)]
        return runs, cuts
    finally:
        await coach.close()
        teacher.stop()


def add_ratios(report: dict[str, Any]) -> None:
    runs = report.get("runs") or []
    if not runs:
        return
    base = runs[0]["video"]
    for run in runs[1:]:
        v = run["video"]
        run["ratios_vs_baseline"] = {
            key: (round(v[key] / base[key], 2) if base.get(key) and v.get(key) is not None
                  else None)
            for key in ("fps", "longest_gap_ms", "frozen_ms")
        }  # fmt: skip


def render(report: dict[str, Any]) -> str:
    lines = [
        f"Network bench: teacher link loss {report['loss_pct']:g} %, "
        f"{report['window_s']:g} s windows, coach decodes the teacher's {report['camera']}"
        " camera (aiortc VP8)",
        "",
        f"{'scenario':<14} {'fps':>5} {'longest gap':>12} {'freezes':>8} {'frozen':>9} "
        f"{'video dropped':>14} {'still missing':>14} {'recovered':>10} "
        f"{'whisper lost':>13} {'wh. dropped':>12}",
    ]
    for run in report.get("runs", []):
        v, w = run["video"], run["whisper"]
        lines.append(
            f"{run['scenario']:<14} {fmt(v['fps'])} {fmt(v['longest_gap_ms'], '.0f'):>9} ms"
            f" {fmt(v['freezes'], 'd'):>8} {fmt(v['frozen_ms'], '.0f'):>6} ms"
            f" {v['dropped_on_uplink']:>14} {v['still_missing_at_coach']:>14}"
            f" {fmt(v['recovered'], 'd'):>10}"
            f" {w['lost_at_teacher']:>6} ({fmt(w['loss_pct'], '.1f')}%)"
            f" {w['dropped_on_downlink']:>12}"
        )
    for run in report.get("runs", [])[1:]:
        r = run["ratios_vs_baseline"]
        lines.append(
            f"Ratio {run['scenario']} / baseline: fps {fmt(r['fps'], '.2f')}, longest gap "
            f"{fmt(r['longest_gap_ms'], '.2f')}, frozen ms {fmt(r['frozen_ms'], '.2f')}"
        )
    for cut in report.get("cuts", []):
        lines.append(
            f"{cut['scenario']} of the teacher's link: coach video back "
            f"{fmt(cut['video_back_after_s'], '.2f')} s after it ends, steady after "
            f"{fmt(cut['video_steady_after_s'], '.2f')} s (frozen since the cut "
            f"{fmt(cut['coach_frozen_s'], '.2f')} s in all), whisper at the teacher back "
            f"{fmt(cut['whisper_back_after_s'], '.2f')} s after"
        )
    if "error" in report:
        lines.append(f"ERROR: {report['error']}")
    return "\n".join(lines)


def reexec_in_private_netns() -> None:
    """Run this script again inside ``unshare -n`` with loopback up."""
    if in_private_netns():
        return
    if os.environ.get("SIDECOACH_BENCH_NETNS_CHILD"):
        sys.exit("bench_network: still not in a private network namespace; giving up")
    env = {**os.environ, "SIDECOACH_BENCH_NETNS_CHILD": "1"}
    cmd = ["unshare", "-n", "--", "bash", "-c", 'ip link set lo up && exec "$@"', "bash",
           sys.executable, *sys.argv]  # fmt: skip
    sys.exit(subprocess.run(cmd, env=env, cwd=ROOT).returncode)


def main() -> int:
    args = parse_args()
    reexec_in_private_netns()
    benchlib.configure_logging(args.verbose)
    reason = unavailable_reason()
    if reason is not None:
        print(f"bench_network: network namespaces unavailable: {reason}", file=sys.stderr)
        return 2
    report = benchlib.run_and_report(args, bench, render)
    return 1 if "error" in report else 0


if __name__ == "__main__":
    sys.exit(main())
