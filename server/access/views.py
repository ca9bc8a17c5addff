"""Per-reader views of a Recording, built on the server from the manifest
and the event log by the access policy: what the review page of each role
shows. Non-admins never get the raw event log or manifest; they get these.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from server.access.policy import AccessPolicy, Item, Reader, Visibility
from server.core.errors import Forbidden
from server.recording.catalog import RecordingRow

#: fields of tracks a review page needs (no file system details)
TRACK_FIELDS = (
    "file",
    "source",
    "kind",
    "codec",
    "role",
    "start_ms",
    "end_ms",
    "opened_ms",
    "closed_ms",
    "frames",
    "bytes",
    "width",
    "height",
)


def _participants(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, str]]:
    people: dict[str, dict[str, str]] = {}
    for e in events:
        if e.get("type") == "join":
            people[str(e.get("participant"))] = {
                "name": str(e.get("name", "")),
                "role": str(e.get("role", "")),
                "invite": str(e.get("invite", "")),
            }
    return people


def manifest_view(
    policy: AccessPolicy,
    reader: Reader,
    row: RecordingRow,
    manifest: dict[str, Any],
    *,
    retention_days: float,
) -> dict[str, Any]:
    files = policy.files(reader, manifest)
    tracks = []
    for t in manifest.get("tracks", []):
        if t.get("file") in files:
            view = {k: t[k] for k in TRACK_FIELDS if k in t}
            tracks.append(view)
    review = manifest.get("review") or {}
    people = manifest.get("participants") or {}
    if policy.can_read(reader, Item.PRESENCE):
        participants = [
            {"name": p.get("name"), "role": p.get("role")} for p in people.values()
        ]
    else:  # observers: the lesson's teacher, nobody else
        participants = [{"name": manifest.get("teacher_name"), "role": "teacher"}]
    started = row.started_at
    return {
        "id": row.id,
        "session": row.session_id,
        "title": manifest.get("title"),
        "teacher_name": manifest.get("teacher_name"),
        "state": row.state,
        "started_at": started,
        "ended_at": row.ended_at,
        "start_ms": manifest.get("start_ms"),
        "end_ms": manifest.get("end_ms"),
        "duration_ms": manifest.get("duration_ms") or row.duration_ms,
        "tracks": tracks,
        "review": {
            "classroom": review.get("classroom") if review.get("classroom") in files else None,
            "offset_ms": review.get("offset_ms", 0),
            "cameras": [c for c in review.get("cameras", []) if c.get("file") in files],
            "whispers": [
                {"file": t["file"], "start_ms": t.get("start_ms"), "end_ms": t.get("end_ms")}
                for t in tracks
                if t.get("source") == "whisper"
            ],
            "thumbnail": review.get("thumbnail") if review.get("thumbnail") in files else None,
        },
        "participants": participants,
        "paused_spans": manifest.get("paused_spans", []),
        "tally_categories": (
            manifest.get("tally_categories", []) if policy.can_read(reader, Item.TALLY) else []
        ),
        "prompts": manifest.get("prompts", []) if policy.can_read(reader, Item.CUE) else [],
        "retention": {"days": retention_days, "delete_after": started + retention_days * 86400},
        "reader": {"role": None if reader.is_admin else str(reader.role), "name": reader.name},
        "permissions": policy.permissions(reader),
    }


#: tally rates are counted in bins this long
RATE_BIN_MS = 60_000


def tally_rates(
    taps: list[dict[str, Any]], categories: list[str], start_ms: int, end_ms: int
) -> dict[str, Any]:
    """Taps per minute, per category, minute by minute of the lesson from
    ``start_ms`` (Go live); taps before it are counted apart, not in a minute."""
    bins = max(1, -(-(end_ms - start_ms) // RATE_BIN_MS))
    names = list(categories) + sorted({t["category"] for t in taps} - set(categories))
    series = {name: [0] * bins for name in names}
    before = 0
    for tap in taps:
        if tap["t"] < start_ms:
            before += 1
            continue
        i = min(bins - 1, (tap["t"] - start_ms) // RATE_BIN_MS)
        series[tap["category"]][i] += 1
    return {
        "bin_ms": RATE_BIN_MS,
        "start_ms": start_ms,
        "categories": names,
        "series": series,
        "before_start": before,
    }


class _Lanes:
    """The timeline's lanes, filled event by event with what one reader may
    see (items it may not read are never collected)."""

    def __init__(self, can: dict[Item, bool], people: dict[str, dict[str, str]]) -> None:
        self.can = can
        self.people = people
        self.cues: dict[str, dict[str, Any]] = {}
        self.whispers: list[dict[str, Any]] = []
        self.open_whispers: dict[str, dict[str, Any]] = {}
        self.taps: dict[Any, dict[str, Any]] = {}
        self.notes: dict[str, dict[str, Any]] = {}
        self.pauses: list[dict[str, Any]] = []
        self.presence: list[dict[str, Any]] = []
        self.gaps: list[dict[str, Any]] = []

    def who(self, pid: Any) -> dict[str, str]:
        p = self.people.get(str(pid), {})
        return {"name": p.get("name", ""), "role": p.get("role", "")}

    def add(self, e: dict[str, Any]) -> None:
        kind, t = e.get("type"), e.get("t", 0)
        if kind in ("cue", "cue-delivered", "cue-ack") and self.can[Item.CUE]:
            self._cue(kind, t, e)
        elif kind in ("whisper-start", "whisper-stop") and self.can[Item.WHISPER]:
            self._whisper(kind, t, e)
        elif kind == "tally" and self.can[Item.TALLY]:
            tap = {"t": t, "category": e.get("category"), **self.who(e.get("by"))}
            self.taps[e.get("tap")] = tap
        elif kind == "tally-undo" and self.can[Item.TALLY]:
            self.taps.pop(e.get("tap"), None)
        elif kind in ("note", "note-shared"):
            self._note(kind, t, e)
        elif kind == "recording-pause":
            self.pauses.append({"start": t, "end": None})
        elif kind == "recording-resume" and self.pauses and self.pauses[-1]["end"] is None:
            self.pauses[-1]["end"] = t
        elif kind in ("join", "leave") and self.can[Item.PRESENCE]:
            self.presence.append({"t": t, "type": kind, **self.who(e.get("participant"))})
        elif kind == "media-gap":
            gap = {"start": e.get("start", t), "end": e.get("end"), "source": e.get("source")}
            self.gaps.append(gap)

    def _cue(self, kind: Any, t: int, e: dict[str, Any]) -> None:
        cue_id = str(e.get("cue"))
        if kind == "cue":
            self.cues[cue_id] = {
                "id": e.get("cue"),
                "t": t,
                "text": e.get("text"),
                "icon": e.get("icon"),
                "color": e.get("color"),
                "by": e.get("by_name") or self.who(e.get("by"))["name"],
                "delivered_t": None,
                "acknowledged_t": None,
            }
        elif cue_id in self.cues:
            field = "delivered_t" if kind == "cue-delivered" else "acknowledged_t"
            self.cues[cue_id][field] = t

    def _whisper(self, kind: Any, t: int, e: dict[str, Any]) -> None:
        coach = str(e.get("participant"))
        if kind == "whisper-start":
            whisper = {"start": t, "end": None, **self.who(e.get("participant"))}
            self.open_whispers[coach] = whisper
            self.whispers.append(whisper)
        elif (whisper := self.open_whispers.pop(coach, {})):
            whisper["end"] = t

    def _note(self, kind: Any, t: int, e: dict[str, Any]) -> None:
        note_id = str(e.get("note"))
        if kind == "note":
            self.notes[note_id] = {
                "id": e.get("note"),
                "t": t,
                "text": e.get("text"),
                "name": e.get("name") or self.who(e.get("by"))["name"],
                "author": e.get("author"),
                "visibility": e.get("visibility", Visibility.PRIVATE),
            }
        elif note_id in self.notes:
            self.notes[note_id]["visibility"] = e.get("visibility", Visibility.PRIVATE)


def timeline_view(
    policy: AccessPolicy,
    reader: Reader,
    events: list[dict[str, Any]],
    *,
    categories: list[str] | None = None,
    span: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The lesson on the session clock, lane by lane, as this reader may see it;
    ``span`` is the recording's (start, end) in session ms.

    The lesson's own clock starts at Go live: ``lesson_start_ms``, the
    recording's first classroom media (``span``'s start). What happened
    before (``first_ms`` to ``lesson_start_ms``: joins, a tally, a note) is
    kept on the session clock; pages collapse it and show lesson times
    (session ms minus ``lesson_start_ms``), as the exports do."""
    can = {item: policy.can_read(reader, item) for item in Item}
    lanes = _Lanes(can, _participants(events))
    for event in events:
        lanes.add(event)
    visible_notes = []
    for note in lanes.notes.values():
        author = note.pop("author", None)
        visibility = Visibility(note["visibility"])
        if policy.can_read_authored(reader, author_invite=author, visibility=visibility):
            note["mine"] = author is not None and author == reader.invite_id
            visible_notes.append(note)
    tallies = sorted(lanes.taps.values(), key=lambda x: x["t"])
    last = max((e.get("t", 0) for e in events), default=0)
    first = min((e.get("t", 0) for e in events), default=0)
    start, end = span if span is not None else (0, last)
    return {
        "cues": list(lanes.cues.values()),
        "whispers": lanes.whispers,
        "tallies": tallies,
        "tally_categories": list(categories or []) if can[Item.TALLY] else [],
        "rates": tally_rates(tallies, list(categories or []), start, max(end, start + 1))
        if can[Item.TALLY]
        else None,
        "notes": visible_notes,
        "pauses": lanes.pauses,
        "presence": lanes.presence,
        "gaps": lanes.gaps,
        "start_ms": start,
        "end_ms": max(end, last),
        "lesson_start_ms": start,
        "first_ms": min(first, start),
    }


def measures_view(
    policy: AccessPolicy,
    reader: Reader,
    status: dict[str, Any],
    definitions: dict[str, str],
    whisper_measures: frozenset[str],
) -> dict[str, Any]:
    """A lesson's measures as this reader may see them: the stored status
    (pending, computing with progress, done with values, failed with a
    reason) and each measure's definition. A reader who may not read
    whispers gets no number derived from them (``whisper_measures``)."""
    if not policy.can_read(reader, Item.MEASURES):
        raise Forbidden("measures are for the lesson's teacher and coaches")
    hears = policy.can_read(reader, Item.WHISPER)
    body: dict[str, Any] = {
        "status": status.get("status", "pending"),
        "progress": status.get("progress"),
        "reason": status.get("reason"),
        "computed_at": status.get("computed_at"),
        "compute_s": status.get("compute_s"),
        "definitions": {
            k: v for k, v in definitions.items() if hears or k not in whisper_measures
        },
        "values": None,
    }
    values = status.get("values")
    if isinstance(values, dict):
        prompts = {
            k: v
            for k, v in (values.get("prompts") or {}).items()
            if hears or k not in whisper_measures
        }
        body["values"] = {**values, "prompts": prompts}
    return body
