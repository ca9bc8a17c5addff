"""Exports of a reviewed lesson, built from the per-reader timeline (so an
export never holds more than its reader may read):

* WebVTT of cues, whispers and comments, loadable as a ``<track>`` of the
  review video (its times are the video's: session ms minus the review
  file's ``offset_ms``);
* CSV of the tallies (a row per tally) and of the per-minute rates, with
  times on the lesson's clock (0:00 is Go live: the timeline's
  ``lesson_start_ms``) beside session ms;
* JSON of the whole timeline with the comments.
"""

from __future__ import annotations

import csv
import io
from typing import Any

#: a point event (a cue, a comment) shows this long as a WebVTT cue
POINT_CUE_MS = 3000


def _vtt_time(ms: int) -> str:
    ms = max(0, int(ms))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _vtt_text(text: str) -> str:
    """WebVTT cue text: no blank lines, no "-->", markup characters escaped."""
    text = " ".join(str(text).split())
    text = text.replace("-->", "→")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webvtt(timeline: dict[str, Any], comments: list[dict[str, Any]], offset_ms: int) -> str:
    entries: list[tuple[int, int, str, str]] = []
    for cue in timeline.get("cues", []):
        state = (
            "acknowledged"
            if cue.get("acknowledged_t") is not None
            else "delivered" if cue.get("delivered_t") is not None else "sent"
        )
        end = cue.get("acknowledged_t") or cue["t"] + POINT_CUE_MS
        by = f" ({cue['by']})" if cue.get("by") else ""
        text = f"Cue{by}: {cue.get('text', '')} [{state}]"
        entries.append((cue["t"], max(end, cue["t"] + 500), f"cue-{cue['id']}", text))
    for n, w in enumerate(timeline.get("whispers", [])):
        end = w.get("end") or w["start"] + POINT_CUE_MS
        text = f"Whisper: {w.get('name') or 'a coach'}"
        entries.append((w["start"], max(end, w["start"] + 500), f"whisper-{n + 1}", text))
    for c in comments:
        text = f"{c.get('name', '')}: {c.get('text', '')}"
        entries.append((c["t"], c["t"] + POINT_CUE_MS, f"comment-{c['id']}", text))
    entries.sort()
    lines = ["WEBVTT", ""]
    for start, end, ident, text in entries:
        lines += [
            ident,
            f"{_vtt_time(start - offset_ms)} --> {_vtt_time(end - offset_ms)}",
            _vtt_text(text),
            "",
        ]
    return "\n".join(lines)


def lesson_clock(ms: int, lesson_start_ms: int) -> str:
    """Session ms on the lesson's clock (0:00 is Go live), as the pages show
    it: "m:ss" or "h:mm:ss"; before Go live with a minus ("-0:12")."""
    delta = ms - lesson_start_ms
    s = abs(delta) // 1000
    sign = "-" if delta < 0 and s else ""
    h, m = divmod(s // 60, 60)
    return f"{sign}{h}:{m:02d}:{s % 60:02d}" if h else f"{sign}{m}:{s % 60:02d}"


def _lesson_start(timeline: dict[str, Any]) -> int:
    return int(timeline.get("lesson_start_ms", timeline.get("start_ms", 0)) or 0)


def tallies_csv(timeline: dict[str, Any]) -> str:
    """One row per tally: its session ms and its time on the lesson's clock."""
    out = io.StringIO()
    writer = csv.writer(out)
    start = _lesson_start(timeline)
    writer.writerow(["t_ms", "lesson_time", "category", "coach"])
    for tap in timeline.get("tallies", []):
        writer.writerow(
            [tap["t"], lesson_clock(tap["t"], start), tap["category"], tap.get("name", "")]
        )
    return out.getvalue()


def rates_csv(timeline: dict[str, Any]) -> str:
    """One row per minute: how many taps of each category (= per minute)."""
    empty: dict[str, Any] = {"categories": [], "series": {}, "start_ms": 0, "bin_ms": 60000}
    rates: dict[str, Any] = timeline.get("rates") or empty
    out = io.StringIO()
    writer = csv.writer(out)
    names = rates["categories"]
    lesson_start = _lesson_start(timeline)
    writer.writerow(["minute", "from_ms", "from", *[f"{n} per minute" for n in names]])
    bins = max((len(v) for v in rates["series"].values()), default=0)
    for i in range(bins):
        start = rates["start_ms"] + i * rates["bin_ms"]
        row = [i + 1, start, lesson_clock(start, lesson_start)]
        writer.writerow([*row, *[rates["series"][n][i] for n in names]])
    return out.getvalue()
