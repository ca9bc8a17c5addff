"""Sessions end by themselves, cleanly: when everyone has left and nobody
came back, when nobody ever came, when a server restarted under a live
lesson; an end racing a rejoin never opens a second lesson; SIGTERM drains."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path

import pytest

from server.core.config import Config, Limits
from server.core.roles import SessionState
from server.recording.manifest import read_manifest
from server.recording.retention import sweep
from server.storage.lessons import open_lessons
from server.storage.sessions import SessionSettings
from testkit.peers import Participant, PatternVideoTrack, ToneTrack, wait_for
from testkit.server import TEST_SECRET, LiveServer, make_config, running_server
from tests.test_crash_recovery import ServerProcess, free_port

pytestmark = pytest.mark.integration


def quick_config(tmp_path: Path, **limits: float) -> Config:
    return make_config(
        tmp_path,
        lifecycle_interval_s=0.1,
        limits=Limits(**{"departure_timeout_s": 1.0, **limits}),  # type: ignore[arg-type]
    )


async def state_of(server: LiveServer, session_id: str) -> SessionState:
    return (await server.store.get(session_id)).state


async def test_everyone_leaves_and_the_session_ends_with_its_recording_finalized(
    tmp_path: Path,
) -> None:
    async with running_server(quick_config(tmp_path)) as server:
        session = await server.create_session()
        async with server.classroom(session.id, mic=True) as (teacher, coach):
            # someone leaving and coming back within the timeout changes nothing
            await coach.close()
            again = server.participant(session.id, "coach")
            await again.join()
            await again.close()
        live = server.manager.get(session.id)
        assert live is not None and live.participants == {}
        deadline = time.monotonic() + 15
        while await state_of(server, session.id) != SessionState.ENDED:
            assert time.monotonic() < deadline, "the empty session never ended"
            await asyncio.sleep(0.1)
        assert server.manager.get(session.id) is None
        while (rows := await server.catalog.recordings(session.id))[0].state == "recording":
            assert time.monotonic() < deadline, "the recording was never finalized"
            await asyncio.sleep(0.1)
        (row,) = rows
        assert row.state == "finalized" and row.duration_ms > 0  # one recording, finalized
        manifest = read_manifest(row.directory)
        assert manifest["state"] == "finalized"
        events = [json.loads(x) for x in (row.directory / "events.jsonl").read_text().splitlines()]
        assert sum(e["type"] == "join" for e in events) == sum(e["type"] == "leave" for e in events)
        # and retention deletes it when due
        deleted = await sweep(server.catalog, retention_days=30, now=time.time() + 31 * 86400)
        assert deleted == [row.id] and not row.directory.exists()


async def test_a_scheduled_session_nobody_joins_expires(tmp_path: Path) -> None:
    async with running_server(quick_config(tmp_path, session_expiry_s=1.0)) as server:
        session = await server.create_session()
        deadline = time.monotonic() + 10
        while await state_of(server, session.id) != SessionState.ENDED:
            assert time.monotonic() < deadline, "the unused session never expired"
            await asyncio.sleep(0.1)
        teacher = server.participant(session.id, "teacher")
        try:
            await teacher.connect()
            reply = await teacher.call("join", {"token": teacher.token})
            assert reply["error"]["code"] == "session_ended"
        finally:
            await teacher.close()


async def test_a_live_session_left_by_a_restart_ends_unless_someone_comes_back(
    tmp_path: Path,
) -> None:
    store = await open_lessons(tmp_path)
    orphan = await store.create(title="Left live", teacher_name="T", settings=SessionSettings())
    rejoined = await store.create(title="Came back", teacher_name="T", settings=SessionSettings())
    for s in (orphan, rejoined):
        await store.set_state(s.id, SessionState.LIVE, at=time.time())
    await store.close()
    async with running_server(quick_config(tmp_path, departure_timeout_s=1.5)) as server:
        teacher = server.participant(rejoined.id, "teacher")
        try:
            await teacher.join()
            deadline = time.monotonic() + 10
            while await state_of(server, orphan.id) != SessionState.ENDED:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            assert await state_of(server, rejoined.id) == SessionState.LIVE
        finally:
            await teacher.close()


async def test_an_end_racing_rejoins_never_opens_a_second_lesson(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    teacher = live_server.participant(session.id, "teacher")
    await teacher.join()
    await teacher.publish(PatternVideoTrack(), "camera")
    await wait_for(lambda: teacher.got("recording-state", state="recording") != [])
    joiners = [live_server.participant(session.id, "coach") for _ in range(8)]
    for p in joiners:
        await p.connect()

    async def keep_joining(p: Participant) -> list[str]:
        codes = []
        for _ in range(6):
            reply = await p.call("join", {"token": p.token})
            codes.append("ok" if reply["ok"] else reply["error"]["code"])
            if reply["ok"]:
                await p.call("leave")
            await asyncio.sleep(0.01)
        return codes

    try:
        racers = [asyncio.create_task(keep_joining(p)) for p in joiners]
        await asyncio.sleep(0.05)
        await live_server.manager.end_session(session.id)
        codes = [c for r in await asyncio.gather(*racers) for c in r]
        assert "session_ended" in codes
        # nothing reopened it: no live session, one recording, finalized
        assert live_server.manager.get(session.id) is None
        assert await state_of(live_server, session.id) == SessionState.ENDED
        rows = await live_server.catalog.recordings(session.id)
        assert [r.state for r in rows] == ["finalized"]
        assert len(list((live_server.config.recordings_dir / session.id).iterdir())) == 1
    finally:
        for p in (teacher, *joiners):
            await p.close()


@pytest.mark.slow
async def test_sigterm_drains_live_sessions_and_finalizes_their_recordings(
    tmp_path: Path,
) -> None:
    store = await open_lessons(tmp_path)
    sessions = [
        await store.create(title=f"Lesson {i}", teacher_name="T", settings=SessionSettings())
        for i in range(2)
    ]
    await store.close()
    from server.core.tokens import issue_invite

    server = ServerProcess(tmp_path, free_port())
    people: list[Participant] = []
    try:
        await server.start()
        for s in sessions:
            teacher = Participant(server.url, issue_invite(TEST_SECRET, s.id, "teacher", ttl_s=600))  # type: ignore[arg-type]
            coach = Participant(server.url, issue_invite(TEST_SECRET, s.id, "coach", ttl_s=600))  # type: ignore[arg-type]
            people += [teacher, coach]
            await teacher.join()
            await teacher.publish(PatternVideoTrack(), "camera")
            await teacher.publish(ToneTrack(), "mic")
            await coach.join()
            await wait_for(lambda c=coach: len(c.received) == 2)  # type: ignore[misc]
            await wait_for(lambda c=coach: c.tracks(source="camera")[0].frames > 30, timeout=15)  # type: ignore[misc]
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        code = await asyncio.get_running_loop().run_in_executor(
            None, lambda: server.proc.wait(timeout=60)  # type: ignore[union-attr]
        )
        assert code == 0
        for p in people:
            await wait_for(lambda p=p: p.got("server-draining") != [])  # type: ignore[misc]
    finally:
        for p in people:
            await p.close()
        with contextlib.suppress(Exception):
            server.kill(signal.SIGKILL)
    log = server.log.read_text()
    assert "drained 2 live sessions" in log
    for s in sessions:
        (directory,) = list((tmp_path / "recordings" / s.id).iterdir())
        manifest = read_manifest(directory)
        assert manifest["state"] == "finalized"  # not left for recovery
        assert {t["source"] for t in manifest["tracks"]} == {"camera", "mic"}
    # the lessons stay live: their pages rejoin when the server is back
    store = await open_lessons(tmp_path)
    try:
        assert {(await store.get(s.id)).state for s in sessions} == {SessionState.LIVE}
    finally:
        await store.close()
