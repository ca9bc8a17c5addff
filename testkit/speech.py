"""Speech at known times, for the voice-activity measures' ground truth:
sentences spoken by Debian's ``espeak-ng``, trimmed of their own leading
and trailing silence by ``sox``, laid out with silences of known lengths,
light white noise under everything; and the result as the recording's
format (WebM/Opus, one track), written with PyAV."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from av import AudioFrame

RATE = 48_000
#: the noise under the lesson, as sox's white-noise amplitude (about -50 dBFS)
NOISE_VOLUME = 0.005
#: sox trims a clip's own silence below this level
TRIM_LEVEL = "0.5%"


def have_tools() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


@dataclass
class Layout:
    """What was laid out: the file, and the truth about it."""

    wav: Path
    total_s: float
    speech_s: list[float]
    pauses_s: list[float]


def _duration(path: Path) -> float:
    out = subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout)


def _speak(text: str, path: Path) -> float:
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True)
    # trim the clip's own silence at both ends; resample to the lesson's rate
    subprocess.run(
        [
            "sox",
            str(raw),
            "-r",
            str(RATE),
            "-c",
            "1",
            "-b",
            "16",
            str(path),
            "silence",
            "1",
            "0.02",
            TRIM_LEVEL,
            "reverse",
            "silence",
            "1",
            "0.02",
            TRIM_LEVEL,
            "reverse",
        ],
        check=True,
    )
    raw.unlink()
    return _duration(path)


def _silence(seconds: float, path: Path) -> None:
    subprocess.run(
        ["sox", "-n", "-r", str(RATE), "-c", "1", "-b", "16", str(path), "trim", "0", str(seconds)],
        check=True,
    )


def lay_out(directory: Path, sentences: list[str], pauses_s: list[float], lead_s: float) -> Layout:
    """``lead_s`` of silence, then sentence, pause, sentence, ... and a
    trailing ``lead_s``; noise over the whole."""
    assert len(pauses_s) == len(sentences) - 1
    parts: list[Path] = []
    lead = directory / "lead.wav"
    _silence(lead_s, lead)
    parts.append(lead)
    spoken: list[float] = []
    for n, text in enumerate(sentences):
        clip = directory / f"say-{n}.wav"
        spoken.append(_speak(text, clip))
        parts.append(clip)
        if n < len(pauses_s):
            gap = directory / f"gap-{n}.wav"
            _silence(pauses_s[n], gap)
            parts.append(gap)
    parts.append(lead)
    clean = directory / "clean.wav"
    subprocess.run(["sox", *map(str, parts), str(clean)], check=True)
    total = _duration(clean)
    noise = directory / "noise.wav"
    subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            str(RATE),
            "-c",
            "1",
            "-b",
            "16",
            str(noise),
            "synth",
            str(total),
            "whitenoise",
            "vol",
            str(NOISE_VOLUME),
        ],
        check=True,
    )
    out = directory / "lesson.wav"
    subprocess.run(["sox", "-m", str(clean), str(noise), str(out)], check=True)
    return Layout(out, total, spoken, list(pauses_s))


def wav_to_webm(wav: Path, webm: Path, start_ms: int = 0) -> None:
    """The WAV as the Recorder writes a mic track: Opus in WebM at 48 kHz,
    timestamps on the session clock starting at ``start_ms``."""
    with av.open(str(wav)) as inp, av.open(str(webm), "w", format="webm") as out:
        stream = out.add_stream("libopus", rate=RATE)
        stream.layout = "mono"  # type: ignore[union-attr]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        pts = start_ms * RATE // 1000
        for frame in inp.decode(audio=0):
            for f in resampler.resample(frame):
                f.pts = pts
                f.time_base = Fraction(1, RATE)
                pts += f.samples
                for packet in stream.encode(f):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def wav_samples(wav: Path) -> np.ndarray:
    with av.open(str(wav)) as inp:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in inp.decode(audio=0)])


class WavTrack(AudioStreamTrack):
    """A WAV file (48 kHz mono s16) played in real time as a microphone,
    20 ms frames; the track ends with the file."""

    FRAME = 960

    def __init__(self, wav: Path) -> None:
        super().__init__()
        self._pcm = wav_samples(wav).astype(np.int16)
        self._t = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live" or self._t >= len(self._pcm):
            self.stop()
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
        else:
            await asyncio.sleep(max(0.0, self._start + self._t / RATE - time.time()))
        chunk = self._pcm[self._t : self._t + self.FRAME]
        if len(chunk) < self.FRAME:
            chunk = np.concatenate([chunk, np.zeros(self.FRAME - len(chunk), np.int16)])
        frame = AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.pts, frame.sample_rate = self._t, RATE
        frame.time_base = Fraction(1, RATE)
        self._t += self.FRAME
        return frame
