"""Draining a node for an upgrade: no new sessions, the lessons on it go on
until everyone has left (then it exits), or until the deadline, or until a
second SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from server.recording.manifest import read_manifest
from server.serve import drain
from testkit.multinode import SECRET, Node, deployment, http, redis_unavailable, wait_async
from testkit.peers import Participant, PatternVideoTrack, wait_for
from testkit.procs import Proc, free_port, sidecoach_cmd, sidecoach_env
from testkit.server import LiveServer
from tests.test_multinode import frames_flow, wait_until_live_on

pytestmark = pytest.mark.integration


@pytest.mark.skipif(redis_unavailable() is not None, reason=str(redis_unavailable()))
@pytest.mark.slow
async def test_draining_node_keeps_its_lesson_sends_new_ones_elsewhere_and_exits(
    tmp_path: Path,
) -> None:
    with deployment(tmp_path) as dep:
        a = dep.start_node("a")
        b = dep.start_node("b", "--drain-deadline", "120")
        await dep.wait_nodes(2)
        first = await dep.create_session(via=b)
        teacher, coach = b.participant(first, "teacher"), b.participant(first, "coach")
        people = [teacher, coach]
        try:
            await teacher.join()
            await teacher.publish(PatternVideoTrack(), "camera")
            await coach.join()
            await frames_flow(coach)
            await wait_until_live_on(a, first, "b")

            b.proc.proc.send_signal(signal.SIGTERM)

            async def draining() -> bool:
                status, body = await b.get("/readyz")
                return status == 503 and body["reasons"] == ["draining"]

            await wait_async(draining, 10, lambda: "B's /readyz says draining")
            await asyncio.sleep(1.5)  # A has B's draining heartbeat
            second = await dep.create_session(via=b, title="after the drain began")
            teacher2 = b.participant(second, "teacher")
            people.append(teacher2)
            await teacher2.join()  # through B's link, to A
            await wait_until_live_on(b, second, "a")
            late = b.participant(first, "coach")  # B still takes joins to its lesson
            people.append(late)
            await late.join()
            await frames_flow(late)
            await frames_flow(coach)
            assert b.proc.proc.poll() is None

            for p in (teacher, coach, late):
                await p.close()
            code = await asyncio.get_running_loop().run_in_executor(
                None, lambda: b.proc.proc.wait(timeout=30)
            )
            assert code == 0
            assert "draining: waiting for" in b.proc.output()
        finally:
            for p in people:
                await p.close()


async def test_second_sigterm_exits_at_once(tmp_path: Path) -> None:
    port = free_port()
    cmd = sidecoach_cmd(
        "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path),
        "--ice-listen-ips", "127.0.0.1", "--drain-deadline", "600", "--log-format", "json",
    )  # fmt: skip
    proc = Proc(cmd, tmp_path / "server.log", env=sidecoach_env(SIDECOACH_SECRET=SECRET))
    node = Node("single", port, tmp_path, proc)
    people: list[Participant] = []
    try:
        proc.wait_output("listening on")
        lesson, other = await _create(node.url), await _create(node.url)
        teacher = node.participant(lesson, "teacher")
        people.append(teacher)
        await teacher.join()
        await teacher.publish(PatternVideoTrack(), "camera")
        await wait_for(lambda: teacher.got("recording-state", state="recording"), timeout=10)
        proc.proc.send_signal(signal.SIGTERM)
        proc.wait_output("draining: waiting for 1 participants")
        newcomer = node.participant(other, "teacher")
        people.append(newcomer)
        await newcomer.connect()
        refused = await newcomer.call("join", {"token": newcomer.token})
        assert refused["error"]["code"] == "server_draining", refused
        proc.proc.send_signal(signal.SIGTERM)
        code = await asyncio.get_running_loop().run_in_executor(
            None, lambda: proc.proc.wait(timeout=30)  # the deadline was 600 s
        )
        assert code == 0
        await wait_for(lambda: teacher.got("server-draining"))
        (directory,) = list((tmp_path / "recordings" / lesson).iterdir())
        assert read_manifest(directory)["state"] == "finalized"
        logged = [json.loads(x) for x in proc.output().splitlines() if x.startswith("{")]
        joined = [e for e in logged if "joined as teacher" in e["message"]]
        assert joined and joined[0]["session"] == lesson, logged[:5]
    finally:
        for p in people:
            await p.close()
        proc.stop()


async def _create(url: str) -> str:
    body_in = {"title": "Drain", "teacher_name": "T"}
    status, body = await http(url, "POST", "/api/sessions", json=body_in)
    assert status == 201, body
    return str(body["session"]["id"])


async def test_drain_gives_up_waiting_at_the_deadline(live_server: LiveServer) -> None:
    session = await live_server.create_session()
    teacher = live_server.participant(session.id, "teacher")
    try:
        await teacher.join()
        # the teacher stays: drain gives up waiting at the deadline and finishes
        await asyncio.wait_for(drain(live_server.app, 0.5, asyncio.Event()), 30)
        assert live_server.manager.draining and live_server.manager.sessions == {}
        await wait_for(lambda: teacher.got("server-draining"))
    finally:
        await teacher.close()
