"""Measures of a lesson, computed from its finalized Recording: tally rates
and ratios, bug-in-ear prompts and their uptake (from the event log), and
voice activity (from the classroom mic, ``vad.py``). Pure functions of the
recording's directory; ``measure_runs.py`` runs them in an executor and
stores the result as ``measures.json`` beside the manifest.

Time: "live time" is the recording's span on the session clock (from
``recording-started``, else the manifest's first media, to
``recording-stopped``, else its last media) minus the stretches the teacher
paused the recording; tallies and prompts inside a pause do not count.

How a cue is linked to a tally category (for uptake), first that applies:
the cue's own ``category`` (a coach may pick one when sending it), the
default prompt's category in ``PROMPT_LINKS``, a category whose name is a
word of the cue's text. A whisper is speech: no category can be read from
it, so whispers count as prompts per minute but not in uptake.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from statistics import median
from typing import Any

from server.recording.event_log import read_events
from server.recording.manifest import EVENTS_FILE, read_manifest
from server.recording.vad import (
    BRIDGE_GAP_MS,
    MIN_SPEECH_MS,
    PAUSE_MIN_S,
    analyze_file,
)

MEASURES_FILE = "measures.json"
#: bumped when a measure's meaning changes (older files are recomputed)
MEASURES_VERSION = 1
#: a prompt is taken up when a tally of its category follows within this
UPTAKE_WINDOW_MS = 60_000
#: tally rates are also given per window of this length of the span
WINDOW_MS = 5 * 60_000
#: the default prompts (``storage.sessions.DEFAULT_PROMPTS``) and the tally
#: category each one asks for
PROMPT_LINKS: dict[str, str] = {
    "Praise specific behaviour": "BSP",
    "Opportunity to respond": "OTR",
    "Transition": "Transition",
}
#: measures a reader who could not hear whispers live is not shown
WHISPER_MEASURES = frozenset({"whispers", "whispers_per_minute", "prompts_per_minute"})

#: one sentence per measure, for the coach to say to the teacher
DEFINITIONS: dict[str, str] = {
    "live_minutes": "Minutes the lesson was recorded, not counting the times it was paused.",
    "tally_per_minute": "How many times per minute the coach tallied this practice, "
    "over the lesson's live time.",
    "tally_ratio": "How many of the first practice were tallied for each one of the second "
    "(for example 4 means four praises per redirection).",
    "tally_windows": "The same per-minute rate in each 5-minute stretch of the lesson, "
    "to show where it rose or fell.",
    "cues_per_minute": "On-screen cues the coach sent per minute of live time.",
    "whispers_per_minute": "Whispers (push-to-talk) the coach sent per minute of live time.",
    "prompts_per_minute": "Prompts of either kind, cues and whispers, per minute of live time.",
    "ack_p50_s": "Half of the cues were acknowledged on the teacher's screen within this "
    "many seconds of being sent.",
    "uptake_share": "The share of cues linked to a practice that were followed within "
    f"{UPTAKE_WINDOW_MS // 1000} seconds by a tally of that practice.",
    "uptake_median_s": "For the cues that were taken up, the typical (median) seconds from "
    "the cue to the tally.",
    "speech_share": "The share of the recorded time in which the microphone heard speech "
    f"(gaps under {BRIDGE_GAP_MS / 1000:g} s count as speech; sounds under "
    f"{MIN_SPEECH_MS} ms do not).",
    "pause_count": f"How many silences of {PAUSE_MIN_S:g} seconds or more came after "
    "speech and before the next speech: chances for wait time.",
    "pause_median_s": "The typical (median) length of those pauses, in seconds.",
    "longest_talk_s": "The longest stretch of speech without a pause of "
    f"{BRIDGE_GAP_MS / 1000:g} s or more, in seconds.",
    "loudness_dbfs": "How loud the room was each second, in decibels below the loudest "
    "sound the recording can hold (0 is the maximum, -60 is very quiet).",
}

Progress = Callable[[float], None]


def _span(events: list[dict[str, Any]], manifest: dict[str, Any]) -> tuple[int, int]:
    starts = [int(e["t"]) for e in events if e.get("type") == "recording-started"]
    stops = [int(e["t"]) for e in events if e.get("type") == "recording-stopped"]
    times = [int(e["t"]) for e in events if isinstance(e.get("t"), int)]
    start = starts[0] if starts else manifest.get("start_ms")
    end = stops[-1] if stops else manifest.get("end_ms")
    start = int(start) if start is not None else min(times, default=0)
    end = int(end) if end is not None else max(times, default=start)
    return start, max(start, end)


def _pauses(events: list[dict[str, Any]], end: int) -> list[tuple[int, int]]:
    pauses: list[tuple[int, int]] = []
    paused_at: int | None = None
    for e in events:
        if e.get("type") == "recording-pause" and paused_at is None:
            paused_at = int(e["t"])
        elif e.get("type") == "recording-resume" and paused_at is not None:
            pauses.append((paused_at, int(e["t"])))
            paused_at = None
    if paused_at is not None:
        pauses.append((paused_at, end))
    return pauses


class LiveTime:
    """The span minus its pauses."""

    def __init__(self, span: tuple[int, int], pauses: list[tuple[int, int]]) -> None:
        self.start, self.end = span
        self.pauses = pauses

    def live(self, t: int) -> bool:
        return self.start <= t <= self.end and not any(a <= t < b for a, b in self.pauses)

    def minutes(self, a: int, b: int) -> float:
        """Live minutes between ``a`` and ``b``."""
        a, b = max(a, self.start), min(b, self.end)
        if b <= a:
            return 0.0
        paused = sum(max(0, min(b, q) - max(a, p)) for p, q in self.pauses)
        return (b - a - paused) / 60_000


def _rate(count: int, minutes: float) -> float | None:
    return round(count / minutes, 4) if minutes > 0 else None


def _tallies(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tally events that were not undone, in order."""
    undone = {e.get("tap") for e in events if e.get("type") == "tally-undo"}
    return [e for e in events if e.get("type") == "tally" and e.get("tap") not in undone]


def tally_measures(
    events: list[dict[str, Any]], categories: list[str], live: LiveTime
) -> dict[str, Any]:
    taps = [e for e in _tallies(events) if live.live(int(e["t"]))]
    names = list(categories) + sorted({str(e["category"]) for e in taps} - set(categories))
    counts = {c: sum(1 for e in taps if e["category"] == c) for c in names}
    minutes = live.minutes(live.start, live.end)
    ratios = {
        f"{a}:{b}": round(counts[a] / counts[b], 4) if counts[b] else None
        for a, b in combinations(names, 2)
    }
    windows = []
    for w_start in range(live.start, max(live.end, live.start + 1), WINDOW_MS):
        w_end = min(w_start + WINDOW_MS, live.end)
        w_min = live.minutes(w_start, w_end)
        in_w = [e for e in taps if w_start <= int(e["t"]) < w_end or int(e["t"]) == live.end]
        w_counts = {c: sum(1 for e in in_w if e["category"] == c) for c in names}
        windows.append(
            {
                "start_ms": w_start,
                "end_ms": w_end,
                "live_minutes": round(w_min, 4),
                "counts": w_counts,
                "per_minute": {c: _rate(n, w_min) for c, n in w_counts.items()},
            }
        )
    return {
        "categories": names,
        "counts": counts,
        "per_minute": {c: _rate(n, minutes) for c, n in counts.items()},
        "ratios": ratios,
        "windows": windows,
    }


def cue_category(event: dict[str, Any], categories: list[str]) -> str | None:
    """The tally category a cue asks for (see the module's docstring)."""
    own = event.get("category")
    if isinstance(own, str) and own in categories:
        return own
    text = str(event.get("text") or "")
    linked = PROMPT_LINKS.get(text)
    if linked in categories:
        return linked
    words = set(re.findall(r"\w+", text.lower()))
    return next((c for c in categories if c.lower() in words), None)


def _p50(values: list[float]) -> float | None:
    return round(median(values), 3) if values else None


def prompt_measures(
    events: list[dict[str, Any]], categories: list[str], live: LiveTime
) -> dict[str, Any]:
    cues = [e for e in events if e.get("type") == "cue" and live.live(int(e["t"]))]
    whispers = [e for e in events if e.get("type") == "whisper-start" and live.live(int(e["t"]))]
    acked: dict[str, int] = {}
    delivered: dict[str, int] = {}
    for e in events:
        if e.get("type") == "cue-ack":
            acked.setdefault(str(e.get("cue")), int(e["t"]))
        elif e.get("type") == "cue-delivered":
            delivered.setdefault(str(e.get("cue")), int(e["t"]))
    sent = {str(e.get("cue")): int(e["t"]) for e in cues}
    taps = _tallies(events)
    linked = 0
    uptakes: list[float] = []
    for cue in cues:
        category = cue_category(cue, categories)
        if category is None:
            continue
        linked += 1
        t0 = int(cue["t"])
        after = [
            int(e["t"]) - t0
            for e in taps
            if e["category"] == category and 0 < int(e["t"]) - t0 <= UPTAKE_WINDOW_MS
        ]
        if after:
            uptakes.append(min(after) / 1000)
    minutes = live.minutes(live.start, live.end)
    return {
        "cues": len(cues),
        "whispers": len(whispers),
        "cues_per_minute": _rate(len(cues), minutes),
        "whispers_per_minute": _rate(len(whispers), minutes),
        "prompts_per_minute": _rate(len(cues) + len(whispers), minutes),
        "ack_p50_s": _p50([(acked[c] - t) / 1000 for c, t in sent.items() if c in acked]),
        "delivery_p50_s": _p50(
            [(delivered[c] - t) / 1000 for c, t in sent.items() if c in delivered]
        ),
        "linked_cues": linked,
        "taken_up": len(uptakes),
        "uptake_share": round(len(uptakes) / linked, 4) if linked else None,
        "uptake_median_s": _p50(uptakes),
    }


def mic_tracks(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The teacher's recorded microphones (the classroom mic first)."""
    return [
        t
        for t in manifest.get("tracks", [])
        if t.get("source") == "mic" and t.get("role") == "teacher" and t.get("file")
    ]


def compute(directory: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Every measure of the recording in ``directory`` (blocking: run it in
    an executor). ``progress`` is told 0..1 as the work goes."""
    began = time.monotonic()
    report = progress or (lambda _: None)
    manifest = read_manifest(directory)
    events = read_events(directory / EVENTS_FILE)
    categories = [str(c) for c in manifest.get("tally_categories") or []]
    start, end = _span(events, manifest)
    live = LiveTime((start, end), _pauses(events, end))
    result: dict[str, Any] = {
        "version": MEASURES_VERSION,
        "span_ms": [start, end],
        "live_minutes": round(live.minutes(start, end), 4),
        "tallies": tally_measures(events, categories, live),
        "prompts": prompt_measures(events, categories, live),
        "audio": [],
    }
    report(0.05)
    mics = mic_tracks(manifest)
    for n, track in enumerate(mics):
        share = 0.95 / len(mics)

        def part(p: float, n: int = n, share: float = share) -> None:
            report(0.05 + share * (n + p))

        activity = analyze_file(directory / str(track["file"]), part)
        result["audio"].append(
            {
                "file": track["file"],
                "participant": track.get("participant"),
                "opened_ms": track.get("opened_ms"),
                **activity.to_json(),
            }
        )
    report(1.0)
    result["compute_s"] = round(time.monotonic() - began, 3)
    return result


def write_measures(directory: Path, body: dict[str, Any]) -> None:
    """Atomically replace ``measures.json`` (a crash leaves the old one)."""
    tmp = directory / (MEASURES_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        os.write(fd, json.dumps(body, separators=(",", ":")).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, directory / MEASURES_FILE)


def read_measures(directory: Path) -> dict[str, Any] | None:
    """The stored measures (``status`` done or failed), or None."""
    try:
        data = json.loads((directory / MEASURES_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != MEASURES_VERSION:
        return None
    return data
