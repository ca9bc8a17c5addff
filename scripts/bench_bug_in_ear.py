"""Bug-in-ear benchmark: whisper forwarding latency and cue delivery latency
at N = 1, 20 and 100 concurrent coaching sessions, all on 127.0.0.1.

Each session is a real Sidecoach session with two real aiortc/socket.io
participants (``testkit.peers.Participant``):

* a **coach** that publishes a ``whisper`` track of PRE-ENCODED Opus (a
  60 s tone + light noise clip made once with ffmpeg, 32 kbit/s, 20 ms
  frames, so no two payloads of the clip are equal) and holds push-to-talk
  ("whisper-start") for the whole run, and sends one cue per second
  during each measuring window;
* a **teacher** that never decodes: its receiver is tapped with
  ``server.media.aiortc_adapter.tap_receiver`` (packets are counted and
  time-stamped before aiortc's jitter buffer and decoder) and it
  acknowledges every "cue" it gets (the socket.io ack the server waits for).

The server runs **in its own process** (started by this script, killed by
PID at the end): ``python scripts/bench_bug_in_ear.py --serve ...`` builds
the normal Sidecoach app (``server.app.create_app``) and, in that process
only, wraps at runtime -- no server file is changed:

* ``Producer.on_packet`` (called synchronously by the receive tap; it
  forwards synchronously through the Consumer, SRTP protect and
  ``sendto``) -> **server forward** = on_packet entry -> the whisper
  consumer's write returned (tap -> socket);
* ``aioice.ice.Connection.data_received`` / ``recvfrom`` -> **server path**
  = the UDP datagram handed to aioice by the event loop -> the consumer's
  write returned. This adds, on top of the forward time, the wait in
  aioice's queue for the server's event loop, SRTP unprotect, RTP parse and
  routing: everything the server does to a packet after the kernel
  delivered it. (Kernel/socket time before the loop reads it is not seen.)

This is method (a) of the issue ("packet in -> packet out" measured at the
server), with the server kept out of the clients' process so that the
server's CPU can be measured on its own (``/proc/<pid>/stat``) and the
clients do not share its event loop. Both processes share the machine's
cores, so at high N they compete for CPU; the bench process's CPU is
reported too.

Measured on the bench's clock as well (one process, ``perf_counter_ns``):

* **whisper end-to-end** = coach ``RTCDtlsTransport._send_rtp`` entry
  (before SRTP protect) -> teacher tap (after SRTP unprotect and RTP parse),
  matched by payload (forwarded byte-identical). Includes both clients'
  SRTP work, loopback, the server, and any wait for the bench's own (busy,
  single-threaded) event loop. Nothing is subtracted.
* **cue latency** = just before the coach's ``sio.emit("cue", ...)`` ->
  the teacher's "cue" handler runs (matched by the cue's unique text);
  and the coach's round trip: emit -> the coach gets ``cue-state``
  "delivered" (the server got the teacher's ack).

Losses: of the whisper packets the coaches sent in a window (up to 0.5 s
before its end), those the teacher never received. Server counters (packets
that reached a whisper producer / were forwarded) come from the same
wrappers.

Usage::

    .venv/bin/python scripts/bench_bug_in_ear.py [--quick] [--json out.json]

``--quick`` runs N = 1 and 5 with short windows (a smoke test).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import logging
import os
import random
import signal
import socket
import struct
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent)]  # benchlib; the server package

import benchlib  # noqa: E402
import numpy as np  # noqa: E402
from aiortc.rtp import RtpPacket  # noqa: E402
from benchlib import OPUS_FRAME_S, CpuReading, OpusClipTrack, fmt, fmt_p50_p99, percentile  # noqa: E402

LEVELS = (1, 20, 100)
QUICK_LEVELS = (1, 5)
BENCH_SECRET = "bench-bie-secret-" + "b" * 40

log = logging.getLogger("bench_bug_in_ear")


# ------------------------------------------------ server side (--serve) ----


class ServerProbe:
    """Runtime wrappers installed in the server process only (see module doc)."""

    def __init__(self) -> None:
        self.recording = False
        self._arrival: tuple[int, int] | None = None  # (datagram in, recvfrom returned)
        self.reset()

    def reset(self) -> None:
        self.forward_ns = array("q")  # on_packet entry -> write returned
        self.path_ns = array("q")  # datagram_received -> write returned
        self.queue_ns = array("q")  # datagram_received -> recvfrom returned (loop wait)
        self.rx_ns = array("q")  # recvfrom returned -> on_packet entry (unprotect, parse)
        self.whisper_packets_in = 0
        self.whisper_packets_gated = 0
        self.whisper_packets_not_forwarded = 0
        self.whisper_packets_out = 0
        self.t_start = time.monotonic()

    def install(self) -> None:
        from aioice import ice

        from server.media.policy import Source
        from server.media.producer import Producer

        probe = self
        original_data_received = ice.Connection.data_received
        original_recvfrom = ice.Connection.recvfrom
        original_on_packet = Producer.on_packet

        def data_received(conn: Any, data: bytes, component: int) -> None:
            stamps = conn.__dict__.get("_bench_stamps")
            if stamps is None:
                stamps = conn._bench_stamps = collections.deque()
            stamps.append(time.perf_counter_ns())
            original_data_received(conn, data, component)

        async def recvfrom(conn: Any) -> tuple[bytes, int]:
            result = await original_recvfrom(conn)
            # aioice's queue and this deque are both FIFO, one entry per datagram
            stamps = conn.__dict__.get("_bench_stamps")
            probe._arrival = (stamps.popleft(), time.perf_counter_ns()) if stamps else None
            return result

        def on_packet(
            producer: Any, packet: RtpPacket, codec: Any, rid: str | None = None
        ) -> None:
            # Nothing suspends between recvfrom returning and the tap calling
            # on_packet (SRTP unprotect, parse and routing are synchronous), so
            # _arrival is this packet's datagram when set.
            t_entry = time.perf_counter_ns()
            arrival, probe._arrival = probe._arrival, None
            if not probe.recording or producer.info.source != Source.WHISPER:
                original_on_packet(producer, packet, codec, rid)
                return
            if producer.paused:
                probe.whisper_packets_gated += 1
                original_on_packet(producer, packet, codec, rid)
                return
            consumers = list(producer.consumers.values())
            before = sum(c.packets_sent for c in consumers)
            t0 = time.perf_counter_ns()
            original_on_packet(producer, packet, codec, rid)
            t1 = time.perf_counter_ns()
            sent = sum(c.packets_sent for c in consumers) - before
            probe.whisper_packets_in += 1
            if not sent:
                probe.whisper_packets_not_forwarded += 1
                return
            probe.whisper_packets_out += sent
            probe.forward_ns.append(t1 - t0)
            if arrival is not None:
                t_in, t_recv = arrival
                probe.path_ns.append(t1 - t_in)
                probe.queue_ns.append(t_recv - t_in)
                probe.rx_ns.append(t_entry - t_recv)

        ice.Connection.data_received = data_received  # type: ignore[method-assign,assignment]
        ice.Connection.recvfrom = recvfrom  # type: ignore[method-assign,assignment]
        Producer.on_packet = on_packet  # type: ignore[method-assign,assignment]

    def report(self) -> dict[str, Any]:
        def us(values: array[int], q: float) -> float | None:
            if not values:
                return None
            return round(float(np.percentile(np.frombuffer(values, dtype=np.int64), q)) / 1000, 1)

        out: dict[str, Any] = {
            "window_s": round(time.monotonic() - self.t_start, 3),
            "whisper_packets_in": self.whisper_packets_in,
            "whisper_packets_out": self.whisper_packets_out,
            "whisper_packets_gated": self.whisper_packets_gated,
            "whisper_packets_not_forwarded": self.whisper_packets_not_forwarded,
            "forward_samples": len(self.forward_ns),
            "path_samples": len(self.path_ns),
        }
        for name, values in (
            ("forward", self.forward_ns),
            ("path", self.path_ns),
            ("queue", self.queue_ns),
            ("rx", self.rx_ns),
        ):
            for q in (50, 99):
                out[f"{name}_us_p{q}"] = us(values, q)
            out[f"{name}_us_max"] = us(values, 100)
        return out


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def serve(port: int, data_dir: Path, control_dir: Path, gc_freeze: bool = False) -> int:
    """Run the real server (``server.serve.serve``, configured by the real CLI
    parser) with the ServerProbe installed. SIGUSR1 starts a window, SIGUSR2
    ends it and writes its numbers to ``control_dir/stats.json``.

    ``gc_freeze`` (an experiment, not the server's behaviour): at each window
    start, ``gc.collect(); gc.freeze()`` so the cyclic GC no longer traverses
    the objects of the sessions already set up."""
    from server.cli import build_config, build_parser, configure_logging
    from server.serve import serve as serve_app

    cli = build_parser().parse_args(benchlib.sidecoach_serve_args(port, data_dir))
    config = build_config(cli)
    configure_logging(config.log_level)
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    probe = ServerProbe()
    probe.install()
    lag = LoopLag()
    gc_pauses = GcPauses()

    def start() -> None:
        if gc_freeze:
            gc.collect()
            gc.freeze()
        probe.reset()
        probe.recording = True
        lag.begin()
        gc_pauses.begin()
        _write_json(control_dir / "started.json", {"ok": True})

    def stop() -> None:
        probe.recording = False
        report = {**probe.report(), **lag.end(), **gc_pauses.end()}
        _write_json(control_dir / "stats.json", report)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, start)
        loop.add_signal_handler(signal.SIGUSR2, stop)
        lag.start()
        try:
            return await serve_app(config)
        finally:
            await lag.stop()

    return asyncio.run(main())


# ------------------------------------------------------ server process ----


class ServerProcess(benchlib.ServerProcess):
    """The Sidecoach server this bench starts (and stops, by PID): this
    script with ``--serve``, told by signals to start and end a window."""

    def __init__(self, workdir: Path, gc_freeze: bool = False) -> None:
        self.data_dir = workdir / "data"
        self.control_dir = workdir / "control"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.control_dir.mkdir(parents=True, exist_ok=True)
        port = benchlib.free_port()
        cmd = [
            sys.executable, str(Path(__file__).resolve()), "--serve", "--port", str(port),
            "--data-dir", str(self.data_dir), "--control-dir", str(self.control_dir),
        ]  # fmt: skip
        if gc_freeze:
            cmd.append("--server-gc-freeze")
        env = benchlib.sidecoach_env(BENCH_SECRET)
        url = f"http://127.0.0.1:{port}"
        super().__init__("server", cmd, env, workdir / "server.log", url, stop_timeout=15)

    async def create_sessions(self, n: int) -> list[str]:
        """Through the admin HTTP API; no recording (one whisper consumer)."""
        ids = []
        async with benchlib.admin_client(BENCH_SECRET, ttl_s=3600, timeout_s=30) as http:
            for i in range(n):
                ids.append(
                    await benchlib.create_session(
                        http, self.url, f"bench {i + 1}", f"Teacher {i + 1}", recording=False
                    )
                )
        return ids

    async def _signal(self, sig: int, name: str, timeout: float = 30) -> dict[str, Any]:
        path = self.control_dir / name
        path.unlink(missing_ok=True)
        os.kill(self.pid, sig)  # our own child, by PID
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"server died:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"server did not write {name} within {timeout:.0f}s")
            await asyncio.sleep(0.02)
        result: dict[str, Any] = json.loads(path.read_text())
        return result

    async def start_window(self) -> None:
        await self._signal(signal.SIGUSR1, "started.json")

    async def stop_window(self) -> dict[str, Any]:
        return await self._signal(signal.SIGUSR2, "stats.json")


# ---------------------------------------------------------- client side ----


class GcPauses:
    """Python's cyclic GC pauses in this process (they stop the event loop)."""

    def __init__(self) -> None:
        self.recording = False
        self.pauses_ns: list[int] = []
        self._t0 = 0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter_ns()
        elif self.recording and self._t0:
            self.pauses_ns.append(time.perf_counter_ns() - self._t0)

    def begin(self) -> None:
        self.pauses_ns = []
        self.recording = True

    def end(self) -> dict[str, Any]:
        self.recording = False
        return {
            "gc_pauses": len(self.pauses_ns),
            "gc_pause_ms_total": round(sum(self.pauses_ns) / 1e6, 1),
            "gc_pause_ms_max": round(max(self.pauses_ns, default=0) / 1e6, 1),
        }


class LiveLatency:
    """Recent whisper end-to-end latencies of all sessions (for settling)."""

    def __init__(self) -> None:
        self.recent: list[int] = []

    def take_p50_ms(self) -> float | None:
        values, self.recent = self.recent, []
        return float(np.median(values)) / 1e6 if values else None


class LoopLag:
    """How late a 10 ms ticker wakes up on this process's event loop: the
    time any callback (a packet, a cue) may wait for the loop."""

    PERIOD_S = 0.010

    def __init__(self) -> None:
        self.lags_ns = array("q")
        self.recording = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter_ns()
            await asyncio.sleep(self.PERIOD_S)
            if self.recording:
                self.lags_ns.append(time.perf_counter_ns() - t0 - int(self.PERIOD_S * 1e9))

    def begin(self) -> None:
        self.lags_ns = array("q")
        self.recording = True

    def end(self) -> dict[str, float | None]:
        self.recording = False
        values = np.frombuffer(self.lags_ns, dtype=np.int64) / 1e6 if self.lags_ns else None
        return {
            f"loop_lag_ms_{name}": None if values is None else round(float(fn(values)), 3)
            for name, fn in (
                ("p50", lambda v: np.percentile(v, 50)),
                ("p99", lambda v: np.percentile(v, 99)),
                ("max", np.max),
            )
        }

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


@dataclass
class BenchSession:
    """One coaching session: a coach whispering + sending cues, a teacher."""

    index: int
    session_id: str
    live: LiveLatency
    coach: Any = None
    teacher: Any = None
    track: OpusClipTrack | None = None
    ready: bool = False
    #: the window's packets are those the coach sends while this is set
    sending_window: bool = False
    #: arrivals are kept while this is set (the window plus a grace period)
    receiving_window: bool = False
    # whisper, coach side
    sent_at: dict[int, int] = field(default_factory=dict)  # hash(payload) -> last send, ns
    sent_log: list[tuple[int, int]] = field(default_factory=list)  # window: (hash, t)
    sent_packets: int = 0
    # whisper, teacher side
    received_packets: int = 0
    received_in_window: int = 0
    first_arrival: dict[int, int] = field(default_factory=dict)  # hash -> t, window + grace
    # cues
    cue_sent: dict[str, int] = field(default_factory=dict)  # text -> emit time, ns
    cue_received: dict[str, int] = field(default_factory=dict)  # text -> teacher handler
    cue_delivered: dict[str, int] = field(default_factory=dict)  # text -> coach told
    cue_task: asyncio.Task[None] | None = None

    # -- probes ---------------------------------------------------------

    def install_send_probe(self, dtls: Any) -> None:
        benchlib.on_rtp_sent(dtls, self.on_coach_packet)

    def on_coach_packet(self, data: bytes) -> None:
        t = time.perf_counter_ns()
        h = hash(data[benchlib.rtp_payload_offset(data) :])
        self.sent_packets += 1
        self.sent_at[h] = t
        if self.sending_window:
            self.sent_log.append((h, t))

    def on_teacher_packet(self, packet: RtpPacket, codec: Any, rid: str | None = None) -> None:
        t = time.perf_counter_ns()
        h = hash(packet.payload)
        self.received_packets += 1
        sent = self.sent_at.get(h)
        if sent is not None:
            self.live.recent.append(t - sent)
        if self.receiving_window:
            self.first_arrival.setdefault(h, t)
            if self.sending_window:
                self.received_in_window += 1

    async def on_cue(self, data: Any = None) -> str:
        t = time.perf_counter_ns()
        if isinstance(data, dict) and isinstance(data.get("text"), str):
            self.cue_received.setdefault(data["text"], t)
        return "ok"  # the socket.io ack the server waits for

    async def on_cue_state(self, data: Any = None) -> None:
        t = time.perf_counter_ns()
        if isinstance(data, dict) and data.get("state") == "delivered":
            self.cue_delivered.setdefault(str(data.get("text")), t)

    # -- window ---------------------------------------------------------

    def start_window(self) -> None:
        self.sent_log = []
        self.first_arrival = {}
        self.received_in_window = 0
        self.cue_sent, self.cue_received, self.cue_delivered = {}, {}, {}
        self.sending_window = self.receiving_window = True

    def settled(self) -> bool:
        """Every cue and whisper packet of the window has arrived."""
        return len(self.cue_received) >= len(self.cue_sent) and all(
            h in self.first_arrival for h, _ in self.sent_log
        )

    async def send_cues(self, rate_hz: float) -> None:
        """One cue per 1/rate_hz seconds, at a random phase, until cancelled."""
        period = 1.0 / rate_hz
        await asyncio.sleep(random.uniform(0, period))
        start, k = time.monotonic(), 0
        while True:
            text = f"bench s{self.index} #{k}"
            self.cue_sent[text] = time.perf_counter_ns()
            await self.coach.sio.emit("cue", {"text": text})
            k += 1
            wait = start + k * period - time.monotonic()
            await asyncio.sleep(max(0.0, wait))


async def _connect(participant: Any, attempts: int = 3) -> None:
    """socket.io connect, retried: under load the websocket upgrade can fail."""
    for attempt in range(attempts):
        try:
            await participant.connect()
            return
        except Exception:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5 * (attempt + 1))


async def setup_session(session: BenchSession, url: str, clip: list[bytes], timeout: float) -> None:
    from testkit.peers import Participant

    def invite(role: str) -> str:
        return benchlib.invite(BENCH_SECRET, session.session_id, role)

    coach = Participant(url, invite("coach"), decode=False)
    teacher = Participant(url, invite("teacher"), decode=False)
    session.coach, session.teacher = coach, teacher

    await _connect(coach)
    coach.sio.on("cue-state", session.on_cue_state)
    await coach.join(f"coach {session.index}")
    session.track = OpusClipTrack(clip, start=random.randrange(len(clip)))
    producer_id = await coach.publish(session.track, "whisper")
    await benchlib.wait_until(lambda: coach.published(producer_id), timeout, "whisper published")
    senders = [t.sender for t in coach.pc.getTransceivers() if t.sender.track is session.track]
    session.install_send_probe(senders[0].transport)

    benchlib.tap_new_tracks(teacher.pc, "audio", session.on_teacher_packet)
    await _connect(teacher)
    teacher.sio.on("cue", session.on_cue)  # replaces Participant's recorder
    await teacher.join(f"teacher {session.index}")

    reply = await coach.call("whisper-start")
    if not reply.get("ok"):
        raise RuntimeError(f"whisper-start refused: {reply}")
    await benchlib.wait_until(
        lambda: session.received_packets > 0, timeout, "teacher hears the whisper"
    )
    session.ready = True


async def close_session(session: BenchSession) -> None:
    if session.cue_task is not None:
        session.cue_task.cancel()
    if session.track is not None:
        session.track.stop()
    for p in (session.coach, session.teacher):
        if p is not None:
            with contextlib.suppress(Exception):
                await p.close()


# ------------------------------------------------------------ measuring ----


@dataclass
class Settings:
    levels: tuple[int, ...]
    window_s: float
    warmup_s: float
    cue_rate_hz: float
    setup_concurrency: int
    setup_timeout_s: float
    #: steady state: the last second's median whisper e2e latency below this
    settle_ms: float = 20.0
    #: measure anyway after waiting this long for the steady state
    max_settle_s: float = 30.0
    #: after a window, wait at most this long for its last packets and cues
    grace_s: float = 10.0
    #: before a window, wait at most this long for other processes to calm down
    quiet_wait_s: float = 0.0
    quiet_other_pct: float = 25.0


def level_stats(sessions: list[BenchSession]) -> dict[str, Any]:
    """Whisper: every packet a coach sent in the window, matched (by payload)
    with its first arrival at the teacher up to the end of the grace period.
    Cues: every cue sent in the window."""
    e2e: list[float] = []
    lost = 0
    for s in sessions:
        for h, t in s.sent_log:
            arrived = s.first_arrival.get(h)
            if arrived is None or arrived < t:
                lost += 1
            else:
                e2e.append((arrived - t) / 1e6)
    cue_lat, cue_rtt = [], []
    cues_sent = cues_received = cues_delivered = 0
    for s in sessions:
        cues_sent += len(s.cue_sent)
        for text, t0 in s.cue_sent.items():
            t1 = s.cue_received.get(text)
            if t1 is not None:
                cues_received += 1
                cue_lat.append((t1 - t0) / 1e6)
            t2 = s.cue_delivered.get(text)
            if t2 is not None:
                cues_delivered += 1
                cue_rtt.append((t2 - t0) / 1e6)
    sent = sum(len(s.sent_log) for s in sessions)
    return {
        "whisper_e2e_ms_p50": percentile(e2e, 50),
        "whisper_e2e_ms_p99": percentile(e2e, 99),
        "whisper_e2e_ms_max": percentile(e2e, 100),
        "whisper_e2e_samples": len(e2e),
        "coach_packets_sent": sent,
        "teacher_packets_received": sum(s.received_in_window for s in sessions),
        "teacher_packets_received_min": min((s.received_in_window for s in sessions), default=0),
        "lost_packets": lost,
        "loss_pct": round(100 * lost / sent, 3) if sent else None,
        "cues_sent": cues_sent,
        "cues_received": cues_received,
        "cues_delivered_to_coach": cues_delivered,
        "cue_ms_p50": percentile(cue_lat, 50),
        "cue_ms_p99": percentile(cue_lat, 99),
        "cue_ms_max": percentile(cue_lat, 100),
        "cue_roundtrip_ms_p50": percentile(cue_rtt, 50),
        "cue_roundtrip_ms_p99": percentile(cue_rtt, 99),
    }


async def wait_for_quiet_machine(server_pid: int, settings: Settings) -> dict[str, Any]:
    """The machine may be shared: wait (bounded) until the processes other
    than the server and this bench use less than ``quiet_other_pct`` of a
    core over 2 s."""
    t0 = time.monotonic()
    other = None
    while time.monotonic() - t0 < settings.quiet_wait_s:
        r0 = CpuReading.take(server_pid)
        await asyncio.sleep(2.0)
        other = CpuReading.take(server_pid).others_since(r0) / 2.0 * 100
        if other < settings.quiet_other_pct:
            break
    return {
        "quiet_wait_s": round(time.monotonic() - t0, 1),
        "other_cpu_pct_before_window": None if other is None else round(other, 1),
    }


async def settle(live: LiveLatency, settings: Settings) -> dict[str, Any]:
    """Wait for the steady state: the backlog that setting up sessions
    leaves in both processes has drained (bounded by ``max_settle_s``)."""
    t0 = time.monotonic()
    series: list[float | None] = []
    live.take_p50_ms()
    while True:
        await asyncio.sleep(1.0)
        p50 = live.take_p50_ms()
        series.append(None if p50 is None else round(p50, 2))
        if p50 is not None and p50 < settings.settle_ms:
            settled = True
            break
        if time.monotonic() - t0 >= settings.max_settle_s:
            settled = False
            break
    return {
        "settled": settled,
        "settle_s": round(time.monotonic() - t0, 1),
        "settle_e2e_p50_ms_per_s": series,
    }


async def run_levels(
    server: ServerProcess, session_ids: list[str], clip: list[bytes], settings: Settings
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    sessions: list[BenchSession] = []
    failed_setups: list[str] = []
    sem = asyncio.Semaphore(settings.setup_concurrency)
    live_latency = LiveLatency()
    lag = LoopLag()
    lag.start()
    gc_pauses = GcPauses()

    async def add(session: BenchSession) -> None:
        async with sem:
            try:
                await asyncio.wait_for(
                    setup_session(session, server.url, clip, settings.setup_timeout_s),
                    settings.setup_timeout_s * 2,
                )
            except Exception as exc:
                failed_setups.append(f"session {session.index}: {type(exc).__name__}: {exc}")
                log.warning("setup of session %d failed: %r", session.index, exc)
                await close_session(session)  # a half set-up session adds no load

    try:
        for n in settings.levels:
            t_setup = time.monotonic()
            new = [
                BenchSession(i + 1, session_ids[i], live_latency) for i in range(len(sessions), n)
            ]
            sessions.extend(new)
            await asyncio.gather(*(add(s) for s in new))
            setup_s = time.monotonic() - t_setup
            live = [s for s in sessions if s.ready]
            if not live:
                raise RuntimeError(f"no session could be set up: {failed_setups[:3]}")
            await asyncio.sleep(settings.warmup_s)
            quiet = await wait_for_quiet_machine(server.pid, settings)
            steady = await settle(live_latency, settings)

            await server.start_window()
            lag.begin()
            gc_pauses.begin()
            for s in live:
                s.start_window()
                s.cue_task = asyncio.ensure_future(s.send_cues(settings.cue_rate_hz))
            r0, load0 = CpuReading.take(server.pid), os.getloadavg()[0]
            await asyncio.sleep(settings.window_s)
            r1 = CpuReading.take(server.pid)
            for s in live:
                s.sending_window = False
                if s.cue_task is not None:
                    s.cue_task.cancel()
            bench_lag = {**lag.end(), **gc_pauses.end()}
            srv = await server.stop_window()
            await asyncio.gather(*(s.cue_task for s in live if s.cue_task), return_exceptions=True)
            for s in live:
                s.cue_task = None
            # the window's last packets and cues may still be on their way
            t_grace = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await benchlib.wait_until(
                    lambda live=live: all(s.settled() for s in live),  # type: ignore[misc]
                    settings.grace_s,
                    "grace",
                )
            grace_s = time.monotonic() - t_grace
            for s in live:
                s.receiving_window = False
            elapsed = r1.t - r0.t
            stats = level_stats(live)
            stalls = sum(s.track.stalls for s in live if s.track is not None)
            level: dict[str, Any] = {
                "n": n,
                "sessions_ready": len(live),
                "setup_s": round(setup_s, 1),
                **quiet,
                **steady,
                "window_s": round(elapsed, 3),
                "grace_used_s": round(grace_s, 2),
                "server_cpu_pct": round((r1.server - r0.server) / elapsed * 100, 1),
                "bench_process_cpu_pct": round((r1.bench - r0.bench) / elapsed * 100, 1),
                "machine_cpu_pct": round((r1.machine - r0.machine) / elapsed * 100, 1),
                "other_processes_cpu_pct": round(r1.others_since(r0) / elapsed * 100, 1),
                "loadavg_1min_at_start": round(load0, 2),
                "whisper_server_forward_us_p50": srv["forward_us_p50"],
                "whisper_server_forward_us_p99": srv["forward_us_p99"],
                "whisper_server_forward_us_max": srv["forward_us_max"],
                "whisper_server_path_us_p50": srv["path_us_p50"],
                "whisper_server_path_us_p99": srv["path_us_p99"],
                "whisper_server_path_us_max": srv["path_us_max"],
                "whisper_server_samples": srv["forward_samples"],
                "server_packets_in": srv["whisper_packets_in"],
                "server_packets_forwarded": srv["whisper_packets_out"],
                "server_packets_not_forwarded": srv["whisper_packets_not_forwarded"],
                "server_packets_gated": srv["whisper_packets_gated"],
                "server_loop_lag_ms_p50": srv["loop_lag_ms_p50"],
                "server_loop_lag_ms_p99": srv["loop_lag_ms_p99"],
                "server_loop_lag_ms_max": srv["loop_lag_ms_max"],
                "server_gc_pause_ms_max": srv["gc_pause_ms_max"],
                **{f"bench_{k}": v for k, v in bench_lag.items()},
                "server": srv,
                **stats,
                "coach_send_rate_pps_mean": round(
                    stats["coach_packets_sent"] / elapsed / len(live), 1
                ),
                "coach_track_stalls": stalls,
            }
            results.append(level)
            log.info("level %s", level)
    finally:
        await lag.stop()
        await benchlib.close_all((close_session(s) for s in sessions), timeout=30)
    if failed_setups:
        for lv in results:
            lv.setdefault("failed_setups", failed_setups[:10])
            lv.setdefault("failed_setups_count", len(failed_setups))
    return results


# ------------------------------------------------------------ reporting ----


def render(report: dict[str, Any]) -> str:
    levels = report["levels"]
    st = report["settings"]
    floor = report.get("python_floor_us") or {}
    lines = [
        f"Bug-in-ear on loopback: N sessions, each 1 coach whispering pre-encoded Opus "
        f"(~{st['clip_payload_kbps']:.0f} kbit/s, 50 pkt/s, push-to-talk held) + "
        f"{st['cue_rate_hz']:g} cue/s to 1 non-decoding teacher",
        f"{report['machine']['cpus']} CPUs; server in its own process, whisper server-added "
        f"latency timed inside it (method (a), runtime wrappers); {st['window_s']:g} s window "
        "per level, in steady state",
        *(
            ["EXPERIMENT: --server-gc-freeze (server: gc.collect(); gc.freeze() at window start)"]
            if st.get("server_gc_freeze")
            else []
        ),
        "",
        "Whisper, server-added (us): forward = Producer.on_packet entry -> the whisper "
        "consumer's write (SRTP protect + sendto) returned;",
        "  path = UDP datagram handed to aioice -> write returned (+ queueing for the server's "
        "event loop, SRTP unprotect, RTP parse, routing).",
        "Whisper e2e (ms): coach _send_rtp -> teacher tap on the bench clock (+ both clients' "
        "SRTP, loopback, the bench's own loop). lost = never arrived / sent in window.",
        "CPU: % of one core over the window: server process, bench process (all clients), "
        "and everything else on the machine.",
        "",
        f"{'N':>4} | {'forward p50/p99 us':>18} | {'path p50/p99 us':>17} | "
        f"{'e2e p50/p99 ms':>17} | {'fwd pkts':>8} | {'lost/sent':>11} | {'srv CPU%':>8} | "
        f"{'bench CPU%':>10} | {'other CPU%':>10}",
        "-" * 125,
    ]
    for lv in levels:
        lost = f"{lv['lost_packets']}/{lv['coach_packets_sent']}"
        lines.append(
            f"{lv['n']:>4} | {fmt_p50_p99(lv, 'whisper_server_forward_us', '.1f'):>18} | "
            f"{fmt_p50_p99(lv, 'whisper_server_path_us', '.1f'):>17} | "
            f"{fmt_p50_p99(lv, 'whisper_e2e_ms', '.2f'):>17} | "
            f"{lv['server_packets_forwarded']:>8} | "
            f"{lost:>11} | {fmt(lv['server_cpu_pct']):>8} | "
            f"{fmt(lv['bench_process_cpu_pct']):>10} | "
            f"{fmt(lv.get('other_processes_cpu_pct')):>10}"
        )
    lines += [
        "",
        "Cues (ms): coach sio.emit('cue') -> teacher 'cue' handler; round trip: emit -> coach "
        "gets cue-state 'delivered'.",
        "Loop lag (ms): lateness of a 10 ms ticker on each process's event loop, p50/p99.",
        "",
        f"{'N':>4} | {'cue p50/p99 ms':>16} | {'max ms':>7} | {'received/sent':>13} | "
        f"{'round trip p50/p99':>18} | {'srv lag p50/p99':>15} | {'bench lag p50/p99':>17} | "
        f"{'ready':>7}",
        "-" * 121,
    ]
    for lv in levels:
        lines.append(
            f"{lv['n']:>4} | {fmt_p50_p99(lv, 'cue_ms', '.2f'):>16} | "
            f"{fmt(lv['cue_ms_max'], '.1f'):>7} | {lv['cues_received']:>6}/{lv['cues_sent']:<6} | "
            f"{fmt_p50_p99(lv, 'cue_roundtrip_ms', '.2f'):>18} | "
            f"{fmt_p50_p99(lv, 'server_loop_lag_ms', '.2f'):>15} | "
            f"{fmt_p50_p99(lv, 'bench_loop_lag_ms', '.2f'):>17} | "
            f"{lv['sessions_ready']:>3}/{lv['n']:<3}"
        )
    if floor:
        lines += [
            "",
            "Machine floor, bench process, one SRTP protect + sendto of a 92-byte RTP packet: "
            f"p50 {fmt(floor.get('back_to_back_p50'))} us back to back, "
            f"{fmt(floor.get('paced_20ms_p50'))} us when paced every 20 ms (cold CPU/caches "
            "between packets).",
        ]
    notes = []
    for lv in levels:
        before = lv.get("other_cpu_pct_before_window")
        if before is not None and before >= 25 or (lv.get("other_processes_cpu_pct") or 0) >= 25:
            notes.append(
                f"N={lv['n']}: the machine is shared: other processes used "
                f"{lv.get('other_processes_cpu_pct')}% of a core during the window "
                f"({before}% just before it, after waiting {lv.get('quiet_wait_s')} s)"
            )
        if not lv.get("settled", True):
            notes.append(
                f"N={lv['n']}: no steady state within {lv['settle_s']} s (median e2e per s: "
                f"{lv['settle_e2e_p50_ms_per_s'][-5:]} ms); measured anyway"
            )
        if lv.get("coach_track_stalls"):
            notes.append(
                f"N={lv['n']}: coach tracks found the bench's loop >250 ms late "
                f"{lv['coach_track_stalls']} times (re-paced, not burst)"
            )
        if lv["coach_send_rate_pps_mean"] < 45:
            notes.append(
                f"N={lv['n']}: coaches sent only {lv['coach_send_rate_pps_mean']} pkt/s "
                "on average (client side overloaded)"
            )
    if report.get("failed_setups_count"):
        notes.append(f"{report['failed_setups_count']} session setups failed")
    if report.get("error"):
        notes.append(f"!! failed: {report['error']}")
    if notes:
        lines += [""] + notes
    return "\n".join(lines)


def python_floor_us() -> dict[str, float]:
    """SRTP protect + sendto of one small RTP packet in this process: back to
    back (warm) and paced every 20 ms like a whisper (cold). A reference for
    the server's forward time, which is this plus a little Python."""
    from pylibsrtp import Policy, Session

    srtp = Session(policy=Policy(key=os.urandom(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    payload = os.urandom(80)
    out: dict[str, float] = {}
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
    ):
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        addr = rx.getsockname()
        seq = 0
        for name, count, pause in (("back_to_back", 2000, 0.0), ("paced_20ms", 50, 0.02)):
            samples = []
            for _ in range(count):
                seq += 1
                data = struct.pack("!BBHII", 0x80, 111, seq, seq * 960, 1234) + payload
                t0 = time.perf_counter_ns()
                tx.sendto(srtp.protect(data), addr)
                samples.append((time.perf_counter_ns() - t0) / 1000)
                with contextlib.suppress(BlockingIOError):
                    rx.recv(2048)
                if pause:
                    time.sleep(pause)
            out[f"{name}_p50"] = percentile(samples, 50, digits=1)
            out[f"{name}_p99"] = percentile(samples, 99, digits=1)
    return out


# ------------------------------------------------------------------ main ----


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(
        levels=tuple(args.levels),
        window_s=args.window,
        warmup_s=args.warmup,
        cue_rate_hz=args.cue_rate,
        setup_concurrency=args.setup_concurrency,
        setup_timeout_s=args.setup_timeout,
        settle_ms=args.settle_ms,
        max_settle_s=args.max_settle,
        quiet_wait_s=args.quiet_wait,
    )
    clip_path = benchlib.make_opus_clip(Path(args.cache_dir))
    clip = benchlib.load_opus_clip(clip_path)
    kbps = benchlib.clip_kbps(clip, OPUS_FRAME_S)
    report: dict[str, Any] = {
        "python_floor_us": python_floor_us(),
        "settings": {
            "levels": list(settings.levels),
            "window_s": settings.window_s,
            "warmup_s": settings.warmup_s,
            "cue_rate_hz": settings.cue_rate_hz,
            "settle_ms": settings.settle_ms,
            "max_settle_s": settings.max_settle_s,
            "quiet_wait_s": settings.quiet_wait_s,
            "grace_s": settings.grace_s,
            "server_gc_freeze": args.server_gc_freeze,
            "clip": str(clip_path),
            "clip_packets": len(clip),
            "clip_unique_payloads": len(set(clip)),
            "clip_payload_kbps": round(kbps, 1),
        },
        "machine": benchlib.machine_info(),
        "method": (
            "server in its own process; whisper server-added latency timed inside it by "
            "runtime wrappers of Producer.on_packet (forward) and aioice "
            "Connection.data_received/recvfrom (path); end-to-end and cue latency on the "
            "bench process's perf_counter_ns clock"
        ),
        "definitions": {
            "whisper_server_forward_us": "Producer.on_packet entry -> whisper consumer's "
            "write (SRTP protect + sendto) returned, whisper producers with one consumer",
            "whisper_server_path_us": "datagram handed to aioice (data_received) -> write "
            "returned: + event-loop queueing, SRTP unprotect, RTP parse, routing",
            "whisper_e2e_ms": "coach RTCDtlsTransport._send_rtp entry (before SRTP) -> "
            "teacher tap (after SRTP unprotect, before jitter buffer), matched by payload",
            "cue_ms": "before coach sio.emit('cue') -> teacher 'cue' handler",
            "cue_roundtrip_ms": "before coach sio.emit('cue') -> coach gets cue-state "
            "'delivered' (after the teacher's socket.io ack reached the server)",
            "lost_packets": "whisper packets sent by coaches in the window that their "
            "teacher had not received by the end of the grace period after it",
            "loop_lag_ms": "lateness of a 10 ms asyncio.sleep ticker on the process's loop",
            "steady_state": "before each window, wait (up to max_settle_s) until the last "
            "second's median whisper e2e is below settle_ms: setting up sessions leaves "
            "a backlog in both processes",
        },
        "levels": [],
    }
    with tempfile.TemporaryDirectory(prefix="sidecoach-bie-bench-") as tmp:
        server = ServerProcess(Path(tmp), args.server_gc_freeze)
        try:
            await server.start()
            session_ids = await server.create_sessions(max(settings.levels))
            report["server_pid"] = server.pid
            budget = 60 + sum(
                n / settings.setup_concurrency * 6
                + settings.warmup_s
                + settings.window_s
                + settings.max_settle_s
                + settings.quiet_wait_s
                + settings.grace_s
                + 20
                for n in settings.levels
            )
            report["budget_s"] = round(budget)
            report["levels"] = await asyncio.wait_for(
                run_levels(server, session_ids, clip, settings), budget
            )
        except Exception as exc:
            log.exception("benchmark failed")
            report["error"] = f"{type(exc).__name__}: {exc}"
            report["server_log_tail"] = server.log_tail()
        finally:
            server.stop()
    for lv in report["levels"]:
        if "failed_setups_count" in lv:
            report["failed_setups_count"] = lv["failed_setups_count"]
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    benchlib.add_quick_and_json_args(parser, "N=1,5 with short windows (smoke)")
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--window", type=float, default=None, help="window per level, s (20)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up per level, s (3)")
    parser.add_argument("--cue-rate", type=float, default=1.0, help="cues/s per session (1)")
    parser.add_argument(
        "--settle-ms", type=float, default=20.0,
        help="steady state: last second's median whisper e2e below this, ms (20)",
    )  # fmt: skip
    parser.add_argument(
        "--max-settle", type=float, default=None,
        help="wait at most this long for the steady state, s (30; quick 10)",
    )  # fmt: skip
    parser.add_argument(
        "--server-gc-freeze", action="store_true",
        help="experiment: gc.collect(); gc.freeze() in the server at each window start",
    )  # fmt: skip
    parser.add_argument(
        "--quiet-wait", type=float, default=None,
        help="wait up to this long before each window for other processes to use < 25%% "
        "of a core, s (60; quick 0)",
    )  # fmt: skip
    parser.add_argument("--setup-concurrency", type=int, default=5)
    parser.add_argument("--setup-timeout", type=float, default=30.0)
    benchlib.add_cache_and_verbose_args(parser, "where the encoded Opus clip is kept")
    # internal: run the instrumented server (started by the bench itself)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--control-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.levels = args.levels or list(QUICK_LEVELS if args.quick else LEVELS)
    args.window = args.window or (3.0 if args.quick else 20.0)
    args.warmup = args.warmup or (1.0 if args.quick else 3.0)
    args.max_settle = args.max_settle or (10.0 if args.quick else 30.0)
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if args.quick else 60.0
    if args.cue_rate <= 0 or any(n < 1 for n in args.levels):
        parser.error("--cue-rate and --levels must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    benchlib.configure_logging(args.verbose)
    if args.serve:
        return serve(args.port, Path(args.data_dir), Path(args.control_dir), args.server_gc_freeze)
    report = benchlib.run_and_report(args, bench, render)
    return 1 if report.get("error") or not report["levels"] else 0


if __name__ == "__main__":
    sys.exit(main())
