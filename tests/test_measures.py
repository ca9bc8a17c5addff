"""Measures of a lesson against ground truth the tests make: an event log
with tallies and prompts at known times (rates, ratios, windows, uptake
exact), speech laid out by espeak-ng and sox at known times (speech share,
pauses within 5 %), a real lesson recorded through the server and read
back through the API by each role."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.access.policy import READ, AccessPolicy, Item, Reader
from server.access.views import measures_view
from server.core.errors import Forbidden
from server.core.roles import Role
from server.recording.manifest import EVENTS_FILE, write_manifest
from server.recording.measures import DEFINITIONS, WHISPER_MEASURES, compute
from testkit import speech
from testkit.peers import PatternVideoTrack, wait_for
from testkit.server import LiveServer

MIN = 60_000
CATEGORIES = ["OTR", "BSP", "Redirection"]

needs_speech_tools = pytest.mark.skipif(
    not speech.have_tools(), reason="espeak-ng and sox are needed (apt-get install espeak-ng sox)"
)


def write_lesson(directory: Path, events: list[dict[str, Any]], tracks: list[Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(e) + "\n" for e in events)
    (directory / EVENTS_FILE).write_text(lines)
    write_manifest(
        directory,
        {
            "state": "finalized",
            "tally_categories": CATEGORIES,
            "tracks": tracks,
            "start_ms": events[0]["t"],
            "end_ms": events[-1]["t"],
        },
    )


def tally(t: int, category: str, tap: int) -> dict[str, Any]:
    return {"t": t, "type": "tally", "category": category, "tap": tap, "by": "c"}


def known_lesson() -> list[dict[str, Any]]:
    """12 live minutes: recorded 1:00 .. 15:00, paused 6:00 .. 8:00."""
    t0 = 1 * MIN
    ev: list[dict[str, Any]] = [{"t": t0, "type": "recording-started"}]
    # OTR: 12 taps in the live time (one more in the pause, one undone)
    for m in range(12):
        at = t0 + m * MIN + 10_000 + (2 * MIN if m >= 5 else 0)
        ev.append(tally(at, "OTR", m + 1))
    ev.append(tally(t0 + 6 * MIN, "OTR", 100))  # in the pause: not counted
    ev.append(tally(t0 + 30_000, "BSP", 101))
    ev.append({"t": t0 + 31_000, "type": "tally-undo", "category": "BSP", "tap": 101})
    # BSP: 8, Redirection: 2 (ratio 4:1)
    for n, at in enumerate([2, 3, 4, 9, 10, 11, 12, 13]):
        ev.append(tally(at * MIN + 45_000, "BSP", 200 + n))
    ev.append(tally(3 * MIN + 50_000, "Redirection", 300))
    ev.append(tally(11 * MIN + 50_000, "Redirection", 301))
    ev.append({"t": t0 + 5 * MIN, "type": "recording-pause"})
    ev.append({"t": t0 + 7 * MIN, "type": "recording-resume"})
    # cues: q1 linked by its category, taken up after 15 s (BSP at 3:45);
    # q2 linked by its default prompt, taken up after 10 s (OTR at 9:10);
    # q3 linked by a word of its text, never taken up; q4 not linked
    ev += [
        {
            "t": 3 * MIN + 30_000,
            "type": "cue",
            "cue": "q1",
            "text": "Say well done",
            "category": "BSP",
        },
        {"t": 3 * MIN + 31_000, "type": "cue-delivered", "cue": "q1"},
        {"t": 3 * MIN + 32_000, "type": "cue-ack", "cue": "q1"},
        {"t": 9 * MIN, "type": "cue", "cue": "q2", "text": "Opportunity to respond"},
        {"t": 9 * MIN + 500, "type": "cue-delivered", "cue": "q2"},
        {"t": 9 * MIN + 4_000, "type": "cue-ack", "cue": "q2"},
        {"t": 12 * MIN, "type": "cue", "cue": "q3", "text": "Fewer redirection please"},
        {"t": 12 * MIN + 6_000, "type": "cue-ack", "cue": "q3"},
        {"t": 13 * MIN, "type": "cue", "cue": "q4", "text": "Move closer"},
        {"t": 4 * MIN, "type": "whisper-start", "participant": "c"},
        {"t": 4 * MIN + 3_000, "type": "whisper-stop", "participant": "c"},
        {"t": 10 * MIN, "type": "whisper-start", "participant": "c"},
    ]
    ev.sort(key=lambda e: e["t"])
    ev.append({"t": 15 * MIN, "type": "recording-stopped"})
    return ev


def test_tallies_and_prompts_at_known_times(tmp_path: Path) -> None:
    write_lesson(tmp_path, known_lesson(), [])
    values = compute(tmp_path)
    assert values["live_minutes"] == 12.0
    t = values["tallies"]
    assert t["counts"] == {"OTR": 12, "BSP": 8, "Redirection": 2}
    assert t["per_minute"] == {"OTR": 1.0, "BSP": round(8 / 12, 4), "Redirection": round(2 / 12, 4)}
    assert t["ratios"] == {"OTR:BSP": 1.5, "OTR:Redirection": 6.0, "BSP:Redirection": 4.0}
    # windows of the span 1:00 .. 15:00: [1,6) 5 live min, [6,11) 3, [11,15) 4
    windows = t["windows"]
    assert [w["live_minutes"] for w in windows] == [5.0, 3.0, 4.0]
    assert [w["counts"]["OTR"] for w in windows] == [5, 3, 4]
    assert [w["counts"]["BSP"] for w in windows] == [3, 2, 3]
    assert windows[1]["per_minute"]["OTR"] == 1.0
    assert windows[2]["per_minute"]["BSP"] == 0.75
    p = values["prompts"]
    assert (p["cues"], p["whispers"]) == (4, 2)
    assert p["cues_per_minute"] == round(4 / 12, 4)
    assert p["prompts_per_minute"] == 0.5
    assert p["ack_p50_s"] == 4.0  # 2, 4 and 6 s
    assert p["delivery_p50_s"] == 0.75  # 1 and 0.5 s: the median of two is their mean
    assert (p["linked_cues"], p["taken_up"]) == (3, 2)
    assert p["uptake_share"] == round(2 / 3, 4)
    assert p["uptake_median_s"] == 12.5  # 15 s and 10 s


def test_whisper_numbers_only_for_readers_of_whispers(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = AccessPolicy()
    status = {
        "status": "done",
        "values": {
            "prompts": {
                "cues": 1,
                "whispers": 2,
                "prompts_per_minute": 0.3,
                "whispers_per_minute": 0.2,
                "uptake_share": 1.0,
            }
        },
    }
    coach = measures_view(policy, Reader(Role.COACH, "i-c"), status, DEFINITIONS, WHISPER_MEASURES)
    assert coach["values"]["prompts"]["whispers"] == 2
    assert "prompts_per_minute" in coach["definitions"]
    with pytest.raises(Forbidden):
        measures_view(policy, Reader(Role.OBSERVER, "i-o"), status, DEFINITIONS, WHISPER_MEASURES)
    # were debrief members to read measures, they would still get no whisper number
    monkeypatch.setitem(READ, Item.MEASURES, READ[Item.MEASURES] | {Role.MEMBER})
    member = measures_view(
        policy, Reader(Role.MEMBER, "i-m"), status, DEFINITIONS, WHISPER_MEASURES
    )
    assert set(member["values"]["prompts"]) == {"cues", "uptake_share"}
    assert not WHISPER_MEASURES & set(member["definitions"])


async def test_a_run_shows_its_progress_then_its_result_or_why_it_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from server.recording import measure_runs

    write_lesson(tmp_path, known_lesson(), [])
    halfway, go_on = threading.Event(), threading.Event()

    def slow(directory: Path, progress: Any) -> dict[str, Any]:
        progress(0.5)
        halfway.set()
        go_on.wait(10)
        return compute(directory, progress)

    monkeypatch.setattr(measure_runs, "compute", slow)
    runs = measure_runs.MeasureRuns()
    try:
        assert runs.status("r1", tmp_path) == {"status": "pending"}
        runs.schedule("r1", tmp_path)
        await asyncio.get_running_loop().run_in_executor(None, halfway.wait, 10)
        assert runs.status("r1", tmp_path) == {"status": "computing", "progress": 0.5}
        go_on.set()
        await wait_for(lambda: not runs.computing("r1"))
        done = runs.status("r1", tmp_path)
        assert done["status"] == "done" and done["values"]["tallies"]["counts"]["OTR"] == 12
        # a mic track that is not audio: failed, with the reason
        monkeypatch.setattr(measure_runs, "compute", compute)
        (tmp_path / "02-mic-p1.webm").write_bytes(b"not a webm file")
        mic = {"file": "02-mic-p1.webm", "source": "mic", "role": "teacher"}
        write_lesson(tmp_path, known_lesson(), [mic])
        runs.schedule("r1", tmp_path)
        await wait_for(lambda: not runs.computing("r1"))
        failed = runs.status("r1", tmp_path)
        assert failed["status"] == "failed" and "InvalidDataError" in failed["reason"], failed
    finally:
        go_on.set()
        await runs.close()


def within(got: float, want: float, share: float = 0.05) -> bool:
    return abs(got - want) <= share * want


SENTENCES = [
    "Good morning everyone, please open your books to page twelve.",
    "Who can tell me what a fraction is?",
    "Yes Maria, that is exactly right, well done.",
    "Now turn to your partner and explain it in your own words.",
]
PAUSES_S = [3.5, 5.0, 4.0]


@needs_speech_tools
def test_voice_activity_of_speech_laid_out_at_known_times(tmp_path: Path) -> None:
    lay = speech.lay_out(tmp_path, SENTENCES, PAUSES_S, lead_s=1.0)
    speech.wav_to_webm(lay.wav, tmp_path / "02-mic-p1.webm", start_ms=2000)
    mic = {"file": "02-mic-p1.webm", "source": "mic", "role": "teacher", "participant": "p1"}
    write_lesson(
        tmp_path,
        [
            {"t": 2000, "type": "recording-started"},
            {"t": 2000 + int(lay.total_s * 1000), "type": "recording-stopped"},
        ],
        [mic],
    )
    seen: list[float] = []
    began = time.process_time()
    values = compute(tmp_path, seen.append)
    cpu = time.process_time() - began
    (audio,) = values["audio"]
    check_audio(audio, lay)
    assert seen == sorted(seen) and seen[-1] == 1.0
    print(f"\nmeasures: {cpu / (lay.total_s / 60):.2f} CPU s per lesson minute")


def check_audio(audio: dict[str, Any], lay: speech.Layout) -> None:
    assert within(audio["audio_s"], lay.total_s), audio
    assert within(audio["speech_share"], sum(lay.speech_s) / lay.total_s), audio
    assert audio["pause_count"] == len(lay.pauses_s), audio
    for got, want in zip(audio["pauses_s"], lay.pauses_s, strict=True):
        assert within(got, want), (got, want)
    assert within(audio["longest_talk_s"], max(lay.speech_s)), audio


@pytest.mark.slow
@needs_speech_tools
@pytest.mark.integration
async def test_a_recorded_lesson_gets_its_measures_for_who_may_read_them(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """The real path: the laid-out speech is the teacher's mic in a live
    lesson, cues and tallies go through the server, the recording is
    finalized, and its measures come back through the API, role by role."""
    lay = speech.lay_out(tmp_path, SENTENCES[:3], PAUSES_S[:2], lead_s=0.5)
    session = await live_server.create_session()
    teacher = live_server.participant(session.id, "teacher")
    coach = live_server.participant(session.id, "coach")
    try:
        await teacher.join()
        await teacher.publish(PatternVideoTrack(), "camera")
        await wait_for(lambda: teacher.got("recording-state", state="recording") != [])
        mic = speech.WavTrack(lay.wav)
        await teacher.publish(mic, "mic")
        await coach.join()
        cue = await coach.call("cue", {"text": "Praise now", "category": "BSP"})
        assert cue["ok"], cue
        bad = await coach.call("cue", {"text": "x", "category": "Nope"})
        assert bad["error"]["code"] == "unknown_category"
        assert (await coach.call("tally", {"category": "BSP"}))["ok"]
        await wait_for(lambda: mic.readyState == "ended", timeout=lay.total_s + 15)
        await asyncio.sleep(0.5)
        await live_server.manager.end_session(session.id)
    finally:
        await teacher.close()
        await coach.close()
    (row,) = await live_server.catalog.recordings(session.id)
    url = f"{live_server.url}/api/recordings/{row.id}/measures"
    stored = row.directory / "measures.json"
    # computed once the recording is final, before anyone asks
    await wait_for(lambda: stored.exists(), timeout=30)

    def auth(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {live_server.invite(session.id, role)}"}

    async with aiohttp.ClientSession() as http:

        async def done() -> dict[str, Any]:
            async with http.get(url, headers=auth("coach")) as r:
                assert r.status == 200
                body: dict[str, Any] = await r.json()
                assert body["status"] in ("pending", "computing", "done"), body
                return body

        body = await done()
        deadline = time.monotonic() + 60
        while body["status"] != "done" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            body = await done()
        assert body["status"] == "done", body
        values = body["values"]
        assert values["tallies"]["counts"]["BSP"] == 1
        assert values["prompts"]["cues"] == 1 and values["prompts"]["taken_up"] == 1
        assert values["prompts"]["whispers"] == 0
        assert body["definitions"]["speech_share"]
        (audio,) = values["audio"]
        check_audio(audio, lay)
        async with http.get(url, headers=auth("teacher")) as r:
            assert r.status == 200 and "whispers" in (await r.json())["values"]["prompts"]
        async with http.get(url, headers=auth("observer")) as r:
            assert r.status == 403
        async with http.post(url + "/recompute", headers=auth("observer")) as r:
            assert r.status == 403
        first = json.loads(stored.read_text())["computed_at"]
        async with http.post(url + "/recompute", headers=auth("teacher")) as r:
            assert r.status == 202
        await wait_for(lambda: json.loads(stored.read_text())["computed_at"] != first)
        # after a restart with no file (or a recovered recording): computed when asked
        stored.unlink()
        async with http.get(url, headers=auth("teacher")) as r:
            assert (await r.json())["status"] == "computing"
        await wait_for(lambda: stored.exists(), timeout=30)
        print(f"\nmeasures: {body['compute_s']:.3f} s for {values['live_minutes']:.2f} live min")
