"""Review on the lesson's clock: 0:00 is Go live (the recording's first
classroom media). The timeline says where the lesson starts, the rates count
the lesson's minutes from there, and the exports show lesson times."""

from __future__ import annotations

import csv
import io

from server.access.policy import AccessPolicy, Reader
from server.access.views import timeline_view
from server.core.roles import Role
from server.recording.exports import lesson_clock, rates_csv, tallies_csv

EVENTS = [
    {"t": 0, "type": "join", "participant": "p1", "role": "teacher", "name": "Ms. Rivera"},
    {"t": 2_000, "type": "join", "participant": "p2", "role": "coach", "name": "Dr Chen"},
    {"t": 30_000, "type": "tally", "tap": 1, "category": "BSP", "by": "p2"},
    {"t": 54_000, "type": "recording-started", "recording": "r"},
    {"t": 64_500, "type": "tally", "tap": 2, "category": "BSP", "by": "p2"},
    {"t": 130_000, "type": "tally", "tap": 3, "category": "OTR", "by": "p2"},
]


def test_the_timeline_says_where_the_lesson_starts_and_counts_its_minutes() -> None:
    coach = Reader(Role.COACH, "invite-c", "Dr Chen")
    tl = timeline_view(
        AccessPolicy(), coach, EVENTS, categories=["BSP", "OTR"], span=(54_000, 170_000)
    )
    assert (tl["lesson_start_ms"], tl["first_ms"], tl["start_ms"]) == (54_000, 0, 54_000)
    rates = tl["rates"]
    assert rates["start_ms"] == 54_000 and rates["before_start"] == 1
    assert rates["series"]["BSP"] == [1, 0] and rates["series"]["OTR"] == [0, 1]
    tallies = list(csv.DictReader(io.StringIO(tallies_csv(tl))))
    assert [r["lesson_time"] for r in tallies] == ["-0:24", "0:10", "1:16"]
    assert [r["t_ms"] for r in tallies] == ["30000", "64500", "130000"]
    header, *minutes = list(csv.reader(io.StringIO(rates_csv(tl))))
    assert header[:3] == ["minute", "from_ms", "from"]
    assert [m[2] for m in minutes] == ["0:00", "1:00"]


def test_lesson_clock() -> None:
    assert lesson_clock(54_000, 54_000) == "0:00"
    assert lesson_clock(54_999, 54_000) == "0:00"
    assert lesson_clock(53_000, 54_000) == "-0:01"
    assert lesson_clock(54_000 + 3_725_000, 54_000) == "1:02:05"
