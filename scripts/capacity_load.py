"""The load generator of ``bench_capacity.py``: one process driving some of
the benchmark's sessions, told what to do on stdin and answering on stdout
(one JSON object per line). The benchmark starts several of these, so the
clients of 40+ sessions are spread over the machine's cores.

Each session is what the issue calls realistic: a teacher sending the
pre-encoded ~1 Mbit/s VP8 clip (640x480, 30 fps) and Opus; three coaches
that do not decode (their receivers are tapped: packets counted, sequence
gaps found, frames counted by marker bit); the first coach publishes a
whisper (pre-encoded Opus) and cycles push-to-talk; the second sends a cue
every few seconds. The session records (its settings say so).

Commands: ``{"cmd": "add", "sessions": [...]}`` -> ``{"added": n, "failed": [...]}``;
``{"cmd": "start"}`` / ``{"cmd": "stop"}`` -> the window's numbers;
``{"cmd": "quit"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent)]

import benchlib  # noqa: E402
from aiortc.rtp import RtpPacket  # noqa: E402

from testkit.peers import Participant  # noqa: E402

COACHES = 3
PTT_ON_S = 2.0
PTT_OFF_S = 2.0


@dataclass
class VideoProbe:
    """One coach's video receiver: packets, sequence gaps, frames."""

    packets: int = 0
    frames: int = 0
    seqs: set[int] = field(default_factory=set)
    _ext: int | None = None
    _last: int = 0
    _t0: float = 0.0
    recording: bool = False

    def on_header(self, seq: int, marker: bool) -> None:
        self.packets += 1
        if self._ext is None:
            self._ext = seq
        else:
            self._ext += (seq - self._last + 0x8000) % 0x10000 - 0x8000
        self._last = seq
        if self.recording:
            self.seqs.add(self._ext)
            if marker:
                self.frames += 1

    def start(self) -> None:
        self.seqs, self.frames, self.recording = set(), 0, True
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        self.recording = False
        seconds = time.monotonic() - self._t0
        if not self.seqs:
            return {"expected": 0, "received": 0, "frames": 0, "seconds": seconds}
        expected = max(self.seqs) - min(self.seqs) + 1
        return {
            "expected": expected, "received": len(self.seqs), "frames": self.frames,
            "seconds": seconds,
        }  # fmt: skip


@dataclass
class LoadSession:
    index: int
    session_id: str
    tokens: dict[str, str]
    cue_interval_s: float = 4.0
    teacher: Participant | None = None
    coaches: list[Participant] = field(default_factory=list)
    video: list[VideoProbe] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    whisper_sent: dict[int, int] = field(default_factory=dict)
    whisper_e2e: list[int] = field(default_factory=list)
    cue_sent: dict[str, int] = field(default_factory=dict)
    cue_seen: dict[str, int] = field(default_factory=dict)
    window: bool = False
    whisper_window: list[int] = field(default_factory=list)

    def on_whisper_sent(self, data: bytes) -> None:
        self.whisper_sent[hash(data[benchlib.rtp_payload_offset(data) :])] = time.perf_counter_ns()
        if len(self.whisper_sent) > 5000:
            self.whisper_sent.clear()

    def on_teacher_audio(self, packet: RtpPacket, codec: Any, rid: str | None = None) -> None:
        sent = self.whisper_sent.get(hash(packet.payload))
        if sent is not None and self.window:
            self.whisper_window.append(time.perf_counter_ns() - sent)

    async def on_cue(self, data: Any = None) -> str:
        if isinstance(data, dict) and isinstance(data.get("text"), str):
            self.cue_seen.setdefault(data["text"], time.perf_counter_ns())
        return "ok"


async def _join(p: Participant, name: str, attempts: int = 3) -> None:
    for attempt in range(attempts):
        try:
            if not p.sio.connected:
                await p.connect()
            await p.join(name)
            return
        except Exception:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5 * (attempt + 1))


async def setup(s: LoadSession, url: str, video: list[bytes], opus: list[bytes]) -> None:
    teacher = Participant(url, s.tokens["teacher"], decode=False)
    s.teacher = teacher
    benchlib.tap_new_tracks(teacher.pc, "audio", s.on_teacher_audio)
    await teacher.connect()
    teacher.sio.on("cue", s.on_cue)
    await _join(teacher, f"teacher {s.index}")
    await teacher.publish(benchlib.VideoClipTrack(video, seed=s.index), "camera")
    await teacher.publish(benchlib.OpusClipTrack(opus, start=s.index * 97), "mic")
    for i in range(COACHES):
        coach = Participant(url, s.tokens[f"coach{i}"], decode=False)
        probe = VideoProbe()
        s.coaches.append(coach)
        s.video.append(probe)
        await _join(coach, f"coach {s.index}.{i}")
        await benchlib.wait_until(lambda c=coach: _video_ssrcs(c.pc), 30, "video offered")
        _count_at_ice(coach.pc, probe)
    whisperer = s.coaches[0]
    track = benchlib.OpusClipTrack(opus, start=s.index * 13 + 7)
    producer = await whisperer.publish(track, "whisper")
    await benchlib.wait_until(lambda: whisperer.published(producer), 30, "whisper published")
    senders = [t.sender for t in whisperer.pc.getTransceivers() if t.sender.track is track]
    benchlib.on_rtp_sent(senders[0].transport, s.on_whisper_sent)
    await benchlib.wait_until(lambda: all(p.packets > 0 for p in s.video), 60, "video flowing")
    s.tasks.append(asyncio.ensure_future(push_to_talk(whisperer)))
    s.tasks.append(asyncio.ensure_future(cues(s)))


def _video_ssrcs(pc: Any) -> set[int]:
    """The SSRCs of the video the server's offer announces."""
    sdp = pc.remoteDescription.sdp if pc.remoteDescription is not None else ""
    ssrcs: set[int] = set()
    kind = ""
    for line in sdp.splitlines():
        if line.startswith("m="):
            kind = line[2:].split()[0]
        elif kind == "video" and line.startswith("a=ssrc:"):
            ssrcs.add(int(line[7:].split()[0]))
    return ssrcs


def _count_at_ice(pc: Any, probe: VideoProbe) -> None:
    """A coach that does not decode need not decrypt either: the RTP packets
    it gets go no further than its ICE connection (aiortc would otherwise
    decrypt, jitter-buffer and decode the audio, and queue it for a reader
    that does not exist); video packets are counted from their headers
    (SRTP leaves them in the clear). STUN, DTLS and RTCP take aiortc's own
    path. This keeps the load generator's cost per coach low; the server's
    work is the same."""
    ssrcs = _video_ssrcs(pc)
    connection = pc.getTransceivers()[0].receiver.transport.transport._connection
    original = connection.data_received

    def data_received(data: bytes, component: int) -> None:
        if len(data) >= 12 and 128 <= data[0] < 192 and not 192 <= data[1] <= 223:
            if int.from_bytes(data[8:12], "big") in ssrcs:
                probe.on_header(int.from_bytes(data[2:4], "big"), bool(data[1] & 0x80))
            return
        original(data, component)

    connection.data_received = data_received


async def push_to_talk(coach: Participant) -> None:
    while True:
        await coach.call("whisper-start")
        await asyncio.sleep(PTT_ON_S)
        await coach.call("whisper-stop")
        await asyncio.sleep(PTT_OFF_S)


async def cues(s: LoadSession) -> None:
    interval_s = s.cue_interval_s
    await asyncio.sleep((s.index % 8) * interval_s / 8)
    k = 0
    while True:
        text = f"cue s{s.index} #{k}"
        k += 1
        if s.window:
            s.cue_sent[text] = time.perf_counter_ns()
        await s.coaches[1].sio.emit("cue", {"text": text})
        await asyncio.sleep(interval_s)


async def close(s: LoadSession) -> None:
    for task in s.tasks:
        task.cancel()
    for p in [*s.coaches, *([s.teacher] if s.teacher else [])]:
        with contextlib.suppress(Exception):
            await p.close()


class Load:
    def __init__(self, url: str, video: list[bytes], opus: list[bytes]) -> None:
        self.url, self.video, self.opus = url, video, opus
        self.sessions: list[LoadSession] = []
        self.lag: list[float] = []
        self._lag_task: asyncio.Task[None] | None = None
        self._window = False

    async def add(self, specs: list[dict[str, Any]], concurrency: int = 3) -> dict[str, Any]:
        sem = asyncio.Semaphore(concurrency)
        failed: list[str] = []

        async def one(spec: dict[str, Any]) -> None:
            s = LoadSession(spec["index"], spec["id"], spec["tokens"], spec["cue_interval_s"])
            async with sem:
                try:
                    await asyncio.wait_for(setup(s, self.url, self.video, self.opus), 90)
                    self.sessions.append(s)
                except Exception as exc:
                    failed.append(f"session {s.index}: {type(exc).__name__}: {exc}"[:200])
                    await close(s)

        await asyncio.gather(*(one(spec) for spec in specs))
        return {"added": len(specs) - len(failed), "failed": failed}

    async def _watch_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(0.01)
            if self._window:
                self.lag.append((loop.time() - t0 - 0.01) * 1000)

    def start(self) -> dict[str, Any]:
        if self._lag_task is None:
            self._lag_task = asyncio.ensure_future(self._watch_lag())
        self.lag = []
        self._window = True
        for s in self.sessions:
            s.window, s.whisper_window, s.cue_sent, s.cue_seen = True, [], {}, {}
            for probe in s.video:
                probe.start()
        return {"started": len(self.sessions)}

    async def stop(self, grace_s: float = 1.0) -> dict[str, Any]:
        subscribers = [
            {**p.stop(), "session": s.index, "coach": i}
            for s in self.sessions
            for i, p in enumerate(s.video)
        ]
        for s in self.sessions:
            s.window = False
        self._window = False
        await asyncio.sleep(grace_s)  # the window's last cues arrive
        cue_ms = [
            (s.cue_seen[t] - t0) / 1e6
            for s in self.sessions
            for t, t0 in s.cue_sent.items()
            if t in s.cue_seen
        ]
        people = [p for s in self.sessions for p in [s.teacher, *s.coaches] if p is not None]
        return {
            "sessions": len(self.sessions),
            "participants_removed": sum(len(p.got("removed")) for p in people),
            "participants_disconnected": sum(not p.sio.connected for p in people),
            "subscribers": subscribers,
            "whisper_e2e_ms": [v / 1e6 for s in self.sessions for v in s.whisper_window],
            "cues_sent": sum(len(s.cue_sent) for s in self.sessions),
            "cue_e2e_ms": cue_ms,
            "cue_texts": [t for s in self.sessions for t in s.cue_sent],
            "loop_lag_ms": self.lag,
        }

    async def close(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
        await benchlib.close_all((close(s) for s in self.sessions), timeout=30)


async def main(url: str, video_path: str, opus_path: str) -> None:
    video = benchlib.load_video_clip(Path(video_path))
    load = Load(url, video, benchlib.load_opus_clip(Path(opus_path)))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def answer(data: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(data) + "\n")
        sys.stdout.flush()

    answer({"ready": True})
    try:
        while line := await reader.readline():
            command = json.loads(line)
            if command["cmd"] == "add":
                answer(await load.add(command["sessions"]))
            elif command["cmd"] == "start":
                answer(load.start())
            elif command["cmd"] == "stop":
                answer(await load.stop())
            elif command["cmd"] == "quit":
                break
    finally:
        await load.close()


if __name__ == "__main__":
    benchlib.configure_logging(False)
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
