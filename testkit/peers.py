"""A real participant for tests and benchmarks: python-socketio client +
aiortc peer connection, speaking Sidecoach's signaling protocol on loopback.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import socketio
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InvalidStateError
from aiortc.mediastreams import (
    AudioStreamTrack,
    MediaStreamError,
    MediaStreamTrack,
    VideoStreamTrack,
)
from av import AudioFrame, VideoFrame

from server.media.aiortc_adapter import new_peer_connection, restrict_ice

LOOPBACK = ("127.0.0.1",)
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def without_abs_send_time(sdp: str) -> str:
    """An answer that does not take the abs-send-time header extension: the
    server then sends none, and aiortc's receive-side estimator (Python,
    fed after the event loop's queueing: it reads a busy test process as a
    congested link) sends no REMB. Test peers are receivers without REMB;
    the browsers are the ones whose estimate the server follows."""
    return "".join(line for line in sdp.splitlines(keepends=True) if ABS_SEND_TIME not in line)


async def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll ``predicate`` until true; fail with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:.1f}s: {predicate}")
        await asyncio.sleep(interval)


class PatternVideoTrack(VideoStreamTrack):
    """Synthetic camera: a moving gradient, 320x240 at 30 fps, encoded by
    aiortc on the *client* (so keyframes are made on PLI)."""

    def __init__(self, width: int = 320, height: int = 240, flash_at: float | None = None) -> None:
        super().__init__()
        self._w, self._h = width, height
        self._n = 0
        #: wall time from which every frame is white (to line up with a ToneTrack's beep)
        self.flash_at = flash_at
        #: media-clock time (as wall time) of the first white frame
        self.flashed_at: float | None = None

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        self._n += 1
        img = np.zeros((self._h, self._w, 3), dtype=np.uint8)
        # the flash follows the track's own media clock, as a camera's would
        media_time = self._start + pts * time_base  # type: ignore[attr-defined]
        if self.flash_at is not None and media_time >= self.flash_at:
            img[:] = 255
            if self.flashed_at is None:
                self.flashed_at = float(media_time)
        else:
            img[:, :, 0] = (np.arange(self._w) + self._n * 4) % 256
            img[:, :, 1] = 64
        frame = VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class ToneTrack(AudioStreamTrack):
    """A sine tone at ``freq`` Hz, 48 kHz mono, 20 ms frames."""

    def __init__(
        self, freq: float = 440.0, amplitude: float = 0.5, beep_at: float | None = None
    ) -> None:
        super().__init__()
        self._freq = freq
        self._amp = amplitude
        self._t = 0
        #: wall time before which the track is silent
        self.beep_at = beep_at

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        rate, samples = 48000, 960
        if hasattr(self, "_start"):
            self._t += samples
            wait = self._start + self._t / rate - time.time()
            await asyncio.sleep(max(0.0, wait))
        else:
            self._start = time.time()
        t = (np.arange(samples) + self._t) / rate
        wave = np.sin(2 * math.pi * self._freq * t) * self._amp
        if self.beep_at is not None:
            wave[self._start + t < self.beep_at] = 0.0
        pcm = (wave * 32767).astype(np.int16)
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.pts, frame.sample_rate = self._t, rate
        frame.time_base = fractions.Fraction(1, rate)
        return frame


@dataclass
class Received:
    """One incoming track and what its consumer decoded."""

    mid: str
    info: dict[str, Any]
    track: MediaStreamTrack
    frames: int = 0
    first_frame_at: float | None = None
    width: int = 0
    height: int = 0
    peak_level: float = 0.0
    tone_hz: float = 0.0
    #: monotonic time of each decoded video frame (the latest ones)
    frame_times: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    task: asyncio.Task[None] | None = None


async def consume(rec: Received) -> None:
    """Decode ``rec``'s track until it ends, noting what a viewer would see
    and hear: frames, size, loudness and the main tone."""
    try:
        while True:
            frame = await rec.track.recv()
            now = time.monotonic()
            rec.frames += 1
            if rec.first_frame_at is None:
                rec.first_frame_at = now
            if isinstance(frame, VideoFrame):
                rec.width, rec.height = frame.width, frame.height
                rec.frame_times.append(now)
            elif isinstance(frame, AudioFrame):
                pcm = frame.to_ndarray().astype(np.float32).reshape(-1) / 32768
                if frame.layout.nb_channels > 1:
                    pcm = pcm[:: frame.layout.nb_channels]
                level = float(np.sqrt(np.mean(pcm**2))) if pcm.size else 0.0
                rec.peak_level = max(rec.peak_level, level)
                if level > 0.05 and pcm.size >= 480:
                    spectrum = np.abs(np.fft.rfft(pcm))
                    rec.tone_hz = float(np.argmax(spectrum) * frame.sample_rate / pcm.size)
    except (MediaStreamError, asyncio.CancelledError):
        pass


@dataclass
class Participant:
    url: str
    token: str
    decode: bool = True
    sio: socketio.AsyncClient = field(
        default_factory=lambda: socketio.AsyncClient(reconnection=False)
    )
    pc: RTCPeerConnection = field(default_factory=new_peer_connection)
    joined: dict[str, Any] = field(default_factory=dict)
    received: dict[str, Received] = field(default_factory=dict)
    #: tracks whose m-line the server reused for another track
    replaced: list[Received] = field(default_factory=list)
    events: list[tuple[str, Any]] = field(default_factory=list)
    pending_tracks: dict[str, MediaStreamTrack] = field(default_factory=dict)
    offers: int = 0
    answer_delay: float = 0.0
    answering: bool = True
    #: local addresses this peer gathers ICE candidates on
    ice_ips: tuple[str, ...] = LOOPBACK

    async def connect(self) -> None:
        for name in (
            "participant-joined",
            "participant-left",
            "producer-added",
            "producer-removed",
            "published",
            "publish-failed",
            "session-ended",
            "whisper-state",
            "cue-state",
            "tally-counts",
            "note",
            "cue",
            "recording-state",
            "server-draining",
            "removed",
        ):
            self.sio.on(name, self._recorder(name))
        self.sio.on("offer", self._on_offer)
        await self.sio.connect(self.url, transports=["websocket"])

    def _recorder(self, name: str) -> Any:
        async def record(data: Any = None) -> str:
            self.events.append((name, data))
            return "ok"  # acknowledges events sent with an ack (cues)

        return record

    def got(self, name: str, **match: Any) -> list[Any]:
        """Payloads of received ``name`` events whose fields match."""
        return [
            d for n, d in self.events if n == name and all(d.get(k) == v for k, v in match.items())
        ]

    async def call(self, event: str, data: Any = None, timeout: float = 10) -> dict[str, Any]:
        reply: dict[str, Any] = await self.sio.call(event, data, timeout=timeout)
        return reply

    async def join(self, name: str | None = None) -> dict[str, Any]:
        if not self.sio.connected:
            await self.connect()
        msg: dict[str, Any] = {"token": self.token}
        if name:
            msg["name"] = name
        reply = await self.call("join", msg)
        assert reply["ok"], reply
        self.joined = reply
        return reply

    async def publish(self, track: MediaStreamTrack, source: str, codec: str | None = None) -> str:
        msg: dict[str, Any] = {"source": source, "kind": track.kind}
        if codec:
            msg["codec"] = codec
        reply = await self.call("publish", msg)
        assert reply["ok"], reply
        self.pending_tracks[reply["producerId"]] = track
        return str(reply["producerId"])

    def published(self, producer_id: str) -> bool:
        return any(n == "published" and d["producerId"] == producer_id for n, d in self.events)

    async def _on_offer(self, data: dict[str, Any]) -> None:
        self.offers += 1
        if not self.answering or self.pc.signalingState == "closed":
            return
        try:
            await self._answer(data)
        except InvalidStateError:  # the test closed this peer meanwhile
            self.events.append(("offer-after-close", data["negotiationId"]))

    async def _answer(self, data: dict[str, Any]) -> None:
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        await self.pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "offer"))
        for transceiver in self.pc.getTransceivers():
            producer_id = data["publish"].get(transceiver.mid)
            if producer_id and producer_id in self.pending_tracks:
                transceiver.sender.replaceTrack(self.pending_tracks.pop(producer_id))
                transceiver.direction = "sendonly"
            info = data["tracks"].get(transceiver.mid)
            prev = self.received.get(transceiver.mid)
            if info and prev is not None and prev.info.get("consumerId") != info["consumerId"]:
                if prev.task is not None:  # the m-line now carries another track
                    prev.task.cancel()
                self.replaced.append(self.received.pop(transceiver.mid))
            if info and transceiver.mid not in self.received:
                rec = Received(transceiver.mid, info, transceiver.receiver.track)
                self.received[transceiver.mid] = rec
                if self.decode:
                    rec.task = asyncio.ensure_future(self._consume(rec))
        answer = await self.pc.createAnswer()
        restrict_ice(self.pc, self.ice_ips, None)
        await self.pc.setLocalDescription(
            RTCSessionDescription(without_abs_send_time(answer.sdp), "answer")
        )
        reply = await self.call(
            "answer", {"negotiationId": data["negotiationId"], "sdp": self.pc.localDescription.sdp}
        )
        if not reply["ok"]:
            self.events.append(("answer-refused", reply["error"]))

    async def _consume(self, rec: Received) -> None:
        await consume(rec)

    def tracks(self, **match: Any) -> list[Received]:
        return [
            r for r in self.received.values() if all(r.info.get(k) == v for k, v in match.items())
        ]

    async def close(self) -> None:
        for rec in [*self.received.values(), *self.replaced]:
            if rec.task is not None:
                rec.task.cancel()
                await asyncio.gather(rec.task, return_exceptions=True)
        await self.pc.close()
        if self.sio.connected:
            await self.sio.disconnect()
