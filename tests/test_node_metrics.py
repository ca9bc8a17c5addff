"""``/metrics`` as an operator reads it during and after a lesson."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from testkit.peers import wait_for
from testkit.server import LiveServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(server: LiveServer) -> Samples:
    async with aiohttp.ClientSession() as http, http.get(server.url + "/metrics") as resp:
        text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_lesson_counters(live_server: LiveServer) -> None:
    """Live: one session, a teacher and a coach, video forwarded to the coach
    and to the recording, a cue counted; ended: totals stay, gauges drop."""
    session = await live_server.create_session()
    async with live_server.classroom(session.id, mic=True) as (teacher, coach):
        reply = await coach.call("cue", {"text": "Wait time"})
        assert reply["ok"], reply
        await wait_for(lambda: teacher.got("recording-state", state="recording"), timeout=10)
        await wait_for(lambda: coach.tracks(source="camera")[0].frames > 30, timeout=15)
        live = await scrape(live_server)
        assert value(live, "sidecoach_sessions") == 1
        assert value(live, "sidecoach_participants", role="teacher") == 1
        assert value(live, "sidecoach_participants", role="coach") == 1
        assert value(live, "sidecoach_producers", kind="video") == 1
        assert value(live, "sidecoach_consumers", kind="video") == 1
        assert value(live, "sidecoach_consumers", kind="recorder") == 2
        assert value(live, "sidecoach_media_packets_forwarded_total", kind="video") > 30
        assert value(live, "sidecoach_media_bytes_forwarded_total", kind="video") > 10_000
        assert value(live, "sidecoach_media_packets_received_total", kind="audio") > 10
        assert value(live, "sidecoach_recordings_active") == 1
        assert value(live, "sidecoach_signaling_events_total", event="cue") == 1
        assert value(live, "sidecoach_event_loop_lag_seconds_count") > 0
        await live_server.manager.end_session(session.id)
    await wait_for(lambda: live_server.manager.get(session.id) is None)
    after = await scrape(live_server)
    assert value(after, "sidecoach_sessions") == 0
    assert value(after, "sidecoach_participants", role="coach") == 0
    assert value(after, "sidecoach_recordings_active") == 0
    for name, kind in (
        ("sidecoach_media_packets_forwarded_total", "video"),
        ("sidecoach_media_bytes_forwarded_total", "video"),
        ("sidecoach_media_packets_forwarded_total", "recorder"),
    ):
        assert value(after, name, kind=kind) >= value(live, name, kind=kind) > 0, name
    assert value(after, "sidecoach_recording_bytes_total") > 10_000
    assert value(after, "sidecoach_recording_errors_total") == 0
