"""Measures benchmark: how long computing a lesson's measures takes, per
lesson minute, and how much of a core it uses.

A lesson of ``--minutes`` is made once (cached): speech synthesized by
espeak-ng, laid out by sox with pauses of 3 to 6 s and light noise
(``testkit/speech.py``), encoded as the Recorder writes a mic track (Opus
in WebM), with an event log of a tally every 20 s and a cue every minute.
Then ``server.recording.measures.compute`` runs on it, in this process, as
the server runs it (one executor thread); the script prints wall time and
CPU time per lesson minute and the share of one core (CPU / wall) while
computing, and checks the audio measures against the layout.

    scripts/bench_measures.py [--minutes 30] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS.parent)]  # the server package, testkit

from server.recording.manifest import EVENTS_FILE, write_manifest  # noqa: E402
from server.recording.measures import compute  # noqa: E402
from testkit import speech  # noqa: E402

SENTENCES = [
    "Good morning everyone, please open your books to page twelve.",
    "Who can tell me what a fraction is?",
    "Yes Maria, that is exactly right, well done.",
    "Now turn to your partner and explain it in your own words.",
    "Hands up if you found the answer on your own.",
]
#: pauses cycle through these lengths
PAUSES_S = [3.3, 4.5, 6.0, 3.5]


def make_lesson(directory: Path, minutes: float) -> speech.Layout:
    """One block of speech and pauses, repeated by sox to ``minutes``."""
    block_dir = directory / "block"
    block_dir.mkdir(parents=True, exist_ok=True)
    block = speech.lay_out(block_dir, SENTENCES, PAUSES_S, lead_s=0.8)
    repeats = max(1, round(minutes * 60 / block.total_s))
    wav = directory / "lesson.wav"
    import subprocess

    subprocess.run(["sox", str(block.wav), str(wav), "repeat", str(repeats - 1)], check=True)
    return speech.Layout(
        wav,
        block.total_s * repeats,
        block.speech_s * repeats,
        # the tail and lead (0.8 s each) joined between blocks are not a pause
        block.pauses_s * repeats,
    )


def lesson_directory(cache: Path, minutes: float) -> tuple[Path, speech.Layout]:
    directory = cache / f"lesson-{minutes:g}min"
    directory.mkdir(parents=True, exist_ok=True)
    layout = make_lesson(directory, minutes)
    mic = directory / "02-mic-p1.webm"
    speech.wav_to_webm(layout.wav, mic, start_ms=0)
    end = int(layout.total_s * 1000)
    events = [{"t": 0, "type": "recording-started"}]
    for t in range(10_000, end, 20_000):
        events.append({"t": t, "type": "tally", "category": "OTR", "tap": t})
    for t in range(30_000, end, 60_000):
        events.append({"t": t, "type": "cue", "cue": f"q{t}", "text": "Opportunity to respond"})
        events.append({"t": t + 2_000, "type": "cue-ack", "cue": f"q{t}"})
    events.sort(key=lambda e: int(e["t"]))  # type: ignore[call-overload]
    events.append({"t": end, "type": "recording-stopped"})
    (directory / EVENTS_FILE).write_text("".join(json.dumps(e) + "\n" for e in events))
    write_manifest(
        directory,
        {
            "state": "finalized",
            "tally_categories": ["OTR", "BSP"],
            "tracks": [{"file": mic.name, "source": "mic", "role": "teacher"}],
        },
    )
    return directory, layout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="a 2-minute lesson")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cache-dir", type=Path)
    args = parser.parse_args()
    if not speech.have_tools():
        print("bench_measures: espeak-ng and sox are needed", file=sys.stderr)
        return 2
    minutes = 2.0 if args.quick else args.minutes
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="bench-measures-"))
    directory, layout = lesson_directory(cache, minutes)
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    values = compute(directory)
    wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    lesson_min = layout.total_s / 60
    (audio,) = values["audio"]
    report = {
        "lesson_minutes": round(lesson_min, 2),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "wall_s_per_lesson_minute": round(wall / lesson_min, 4),
        "cpu_s_per_lesson_minute": round(cpu / lesson_min, 4),
        "core_share": round(cpu / wall, 3),
        "speech_share": [audio["speech_share"], round(sum(layout.speech_s) / layout.total_s, 4)],
        "pause_count": [audio["pause_count"], len(layout.pauses_s)],
    }
    print(f"lesson: {lesson_min:.1f} min of laid-out speech ({directory})")
    print(f"computing its measures: {wall:.2f} s wall, {cpu:.2f} s CPU (this thread)")
    print(f"  per lesson minute: {wall / lesson_min:.3f} s wall, {cpu / lesson_min:.3f} s CPU")
    print(f"  share of one core while computing: {cpu / wall:.0%}")
    print(f"  speech share measured / laid out: {report['speech_share']}")
    print(f"  pauses measured / laid out: {report['pause_count']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
