"""Voice activity in a recorded audio track: decode it with PyAV, resample to
16 kHz mono s16, ask WebRTC's VAD (``webrtcvad-wheels``) about each 30 ms
frame, smooth the decisions, and measure speech, pauses and loudness.

Runs in an executor thread (``measures.py``), never on the event loop; the
audio is streamed (a frame at a time), so an hour of lesson holds only one
bool per 30 ms frame and one number per second.

Smoothing (named below so a coach's question "why is that not a pause?"
has an answer): a silence shorter than ``BRIDGE_GAP_MS`` between two
stretches of speech is speech (the gap between words and breaths), and a
voiced stretch shorter than ``MIN_SPEECH_MS`` is not speech (a cough, a
chair, a click). Both are symmetric, so they do not lengthen or shorten
real pauses.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import av
import numpy as np
import webrtcvad

logger = logging.getLogger(__name__)

#: what the VAD is fed: 16 kHz, mono, 16-bit, 30 ms frames
SAMPLE_RATE = 16_000
FRAME_MS = 30
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
#: WebRTC VAD aggressiveness, 0 (least) .. 3 (most eager to call it noise)
VAD_MODE = 3
#: a silence shorter than this between speech is still speech (word gaps)
BRIDGE_GAP_MS = 600
#: a voiced stretch shorter than this is noise, not speech
MIN_SPEECH_MS = 120
#: a pause after speech counts from this length ("wait time" opportunities)
PAUSE_MIN_S = 3.0
#: loudness is one RMS value per this many milliseconds
LOUDNESS_STEP_MS = 1000
#: the quietest loudness reported (digital silence has no logarithm)
SILENCE_DBFS = -100.0
#: how often progress is reported, in seconds of audio
PROGRESS_EVERY_S = 5.0

Progress = Callable[[float], None]


@dataclass
class VoiceActivity:
    """What one audio track says about talk in the lesson."""

    audio_s: float
    speech_s: float
    pauses_s: list[float] = field(default_factory=list)
    longest_talk_s: float = 0.0
    loudness_dbfs: list[float] = field(default_factory=list)

    @property
    def speech_share(self) -> float:
        return self.speech_s / self.audio_s if self.audio_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "audio_s": round(self.audio_s, 3),
            "speech_s": round(self.speech_s, 3),
            "speech_share": round(self.speech_share, 4),
            "pause_count": len(self.pauses_s),
            "pause_median_s": round(median(self.pauses_s), 3) if self.pauses_s else None,
            "pauses_s": [round(p, 3) for p in self.pauses_s],
            "longest_talk_s": round(self.longest_talk_s, 3),
            "loudness_dbfs": [round(v, 1) for v in self.loudness_dbfs],
        }


def _runs(flags: list[bool]) -> list[tuple[bool, int]]:
    """``[(value, length), ...]`` of consecutive equal flags."""
    runs: list[tuple[bool, int]] = []
    for flag in flags:
        if runs and runs[-1][0] == flag:
            runs[-1] = (flag, runs[-1][1] + 1)
        else:
            runs.append((flag, 1))
    return runs


def smooth(flags: list[bool]) -> list[bool]:
    """Drop voiced stretches shorter than ``MIN_SPEECH_MS``, then bridge
    silences shorter than ``BRIDGE_GAP_MS`` between speech."""
    min_speech = math.ceil(MIN_SPEECH_MS / FRAME_MS)
    bridge = math.ceil(BRIDGE_GAP_MS / FRAME_MS)
    out: list[bool] = []
    for value, length in _runs(flags):
        out += [value and length >= min_speech] * length
    runs = _runs(out)
    result: list[bool] = []
    for i, (value, length) in enumerate(runs):
        inner = 0 < i < len(runs) - 1
        result += [value or (inner and length < bridge)] * length
    return result


def measure_flags(flags: list[bool], loudness: list[float]) -> VoiceActivity:
    """The measures of smoothed per-frame speech decisions."""
    frame_s = FRAME_MS / 1000
    runs = _runs(flags)
    pauses = [
        length * frame_s
        for i, (value, length) in enumerate(runs)
        # a silence between speech and speech (the end of the file is not a pause)
        if not value and 0 < i < len(runs) - 1 and length * frame_s >= PAUSE_MIN_S
    ]
    talks = [length * frame_s for value, length in runs if value]
    return VoiceActivity(
        audio_s=len(flags) * frame_s,
        speech_s=sum(talks),
        pauses_s=pauses,
        longest_talk_s=max(talks, default=0.0),
        loudness_dbfs=loudness,
    )


def _dbfs(sum_squares: float, count: int) -> float:
    if count == 0 or sum_squares <= 0:
        return SILENCE_DBFS
    rms = math.sqrt(sum_squares / count) / 32768.0
    return max(SILENCE_DBFS, 20 * math.log10(rms))


def analyze_file(path: Path, progress: Progress | None = None) -> VoiceActivity:
    """Decode the first audio stream of ``path`` and measure it."""
    vad = webrtcvad.Vad(VAD_MODE)
    raw: list[bool] = []
    loudness: list[float] = []
    step = SAMPLE_RATE * LOUDNESS_STEP_MS // 1000
    pending = np.zeros(0, dtype=np.int16)
    level_sum, level_n = 0.0, 0
    last_report = 0.0
    with av.open(str(path)) as container:
        stream: Any = container.streams.audio[0]
        duration_s = _duration_s(container, stream)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        for frame in _decoded(container, stream):
            for out in resampler.resample(frame):
                pending = np.concatenate([pending, out.to_ndarray().reshape(-1)])
            usable = len(pending) - len(pending) % FRAME_SAMPLES
            for start in range(0, usable, FRAME_SAMPLES):
                chunk = pending[start : start + FRAME_SAMPLES]
                raw.append(vad.is_speech(chunk.tobytes(), SAMPLE_RATE))
                squares = chunk.astype(np.float64) ** 2
                for s in range(0, FRAME_SAMPLES, step):  # a frame is shorter than a step
                    part = squares[s : s + step]
                    level_sum += float(part.sum())
                    level_n += len(part)
                    if level_n >= step:
                        loudness.append(_dbfs(level_sum, level_n))
                        level_sum, level_n = 0.0, 0
            pending = pending[usable:]
            heard_s = len(raw) * FRAME_MS / 1000
            if progress is not None and duration_s and heard_s - last_report >= PROGRESS_EVERY_S:
                last_report = heard_s
                progress(min(1.0, heard_s / duration_s))
    if level_n:
        loudness.append(_dbfs(level_sum, level_n))
    return measure_flags(smooth(raw), loudness)


def _decoded(container: Any, stream: Any) -> Any:
    """Decoded frames, skipping a packet a crash damaged."""
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.error.FFmpegError:
            continue


def _duration_s(container: Any, stream: Any) -> float:
    """The track's length, for progress only (0: unknown)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / 1_000_000
    return 0.0
