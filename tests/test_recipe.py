"""The README's several-box recipe works as written (issue 22: it left out
the shared secret, so an invite made on one box was refused on the other).

The three blocks marked ``<!-- recipe: ... -->`` in README.md are read and
run as they are, with test values put in for the placeholders (host names,
addresses, ports, paths, the secret, the Redis password and the database,
a PostgreSQL the test starts): the Redis
certificate, ``redis.conf`` for a real redis-server (TLS only, an ACL user),
two boxes, and ``sidecoach cluster check``. Then a cross-box join: a
lesson made on box1, its teacher on box1, its coach on box2, video flows.
A third box started the old way (no shared secret) makes the check say so.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from server.core.roles import Role
from server.core.tokens import issue_admin_token, issue_invite
from testkit.multinode import redis_unavailable, wait_async
from testkit.peers import Participant, PatternVideoTrack, wait_for
from testkit.postgres import PostgresProc, postgres_unavailable
from testkit.procs import REPO, Proc, free_port, sidecoach_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(redis_unavailable() is not None, reason=str(redis_unavailable())),
    pytest.mark.skipif(postgres_unavailable() is not None, reason=str(postgres_unavailable())),
]


def recipe_blocks() -> dict[str, str]:
    """README's blocks marked ``<!-- recipe: NAME ... -->``, by name."""
    text = (REPO / "README.md").read_text()
    found = re.findall(r"<!-- recipe: ([\w.]+)[^>]*-->\n```\w*\n(.*?)```", text, re.S)
    return dict(found)


def commands(block: str) -> list[str]:
    return [x.strip() for x in block.splitlines() if x.strip() and not x.startswith("#")]


class Values:
    """The placeholders of the recipe and what the test puts in their place."""

    def __init__(self, tmp: Path, database_url: str) -> None:
        self.tmp = tmp
        self.redis_port = free_port()
        self.box_ports = {"10.0.0.11": free_port(), "10.0.0.12": free_port()}
        self.secret = secrets.token_urlsafe(48)
        self.password = "pw-" + secrets.token_hex(16)
        self.swaps = {
            "postgresql://sidecoach:DB_PASSWORD@db.school.example/sidecoach": database_url,
            "THE_SAME_SECRET_ON_EVERY_BOX": self.secret,
            "REDIS_PASSWORD": self.password,
            "redis.school.example": "127.0.0.1",
            "10.0.0.5": "127.0.0.1",
            ":6380": f":{self.redis_port}",
            "tls-port 6380": f"tls-port {self.redis_port}",
            "/etc/redis/tls": str(tmp / "tls"),
            "/var/lib/redis": str(tmp / "redis-data"),
            "/etc/sidecoach/redis-ca.pem": str(tmp / "tls" / "ca.pem"),
        }

    def put(self, text: str) -> str:
        for placeholder, value in self.swaps.items():
            text = text.replace(placeholder, value)
        for address, port in self.box_ports.items():
            text = text.replace(f"http://{address}:8080", f"http://127.0.0.1:{port}")
        assert not re.search(r"example|10\.0\.0\.|/etc/|[A-Z]{4,}_[A-Z_]{4,}(?!=)", text), text
        return text


def sidecoach(args: list[str]) -> list[str]:
    assert args[0] == "sidecoach", args
    return [sys.executable, "-m", "server", *args[1:]]


def start_box(line: str, values: Values, env: dict[str, str]) -> Proc:
    """``VAR=value ... sidecoach serve ...`` from the recipe, on a test port."""
    words = shlex.split(line)
    own = dict(w.split("=", 1) for w in words if re.match(r"^[A-Z_]+=", w))
    argv = [w for w in words if not re.match(r"^[A-Z_]+=", w)]
    url = values.put(own["SIDECOACH_NODE_URL"])
    port = url.rsplit(":", 1)[1]
    argv = [port if a == "8080" else a for a in argv]
    name = argv[argv.index("--node-id") + 1]
    test_only = ["--host", "127.0.0.1", "--data-dir", str(values.tmp / f"data-{name}"),
                 "--ice-listen-ips", "127.0.0.1"]  # fmt: skip
    box_env = {**env, **{k: values.put(v) for k, v in own.items()}}
    proc = Proc(sidecoach(argv) + test_only, values.tmp / f"{name}.log", env=box_env)
    proc.wait_output("listening on", timeout=40)
    return proc


def cluster_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = sidecoach(["sidecoach", "cluster", "check"])
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


async def test_the_readme_recipe_gives_a_deployment_whose_boxes_share_lessons(
    tmp_path: Path,
) -> None:
    blocks = recipe_blocks()
    assert set(blocks) == {"redis", "redis.conf", "boxes"}, set(blocks)
    postgres = PostgresProc()
    values = Values(tmp_path, await postgres.create("sidecoach"))
    (tmp_path / "redis-data").mkdir()
    procs: list[Proc] = []
    people: list[Participant] = []
    try:
        # 1. the Redis box
        for line in commands(blocks["redis"]):
            if line.startswith("chown "):
                continue  # the test's redis-server runs as this user
            done = subprocess.run(sidecoach(shlex.split(values.put(line))), cwd=REPO,
                                  env=sidecoach_env(), capture_output=True, text=True)  # fmt: skip
            assert done.returncode == 0, done.stderr
        conf = tmp_path / "redis.conf"
        conf.write_text(values.put(blocks["redis.conf"]))
        redis = Proc(["redis-server", str(conf)], tmp_path / "redis.log")
        procs.append(redis)
        redis.wait_output("Ready to accept connections", timeout=15)

        # 2.-3. every box
        env = sidecoach_env()
        boxes = []
        for line in commands(blocks["boxes"]):
            if line.startswith("export "):
                key, value = shlex.split(line[len("export ") :])[0].split("=", 1)
                env[key] = values.put(value)
            elif " sidecoach serve " in f" {line} ":
                boxes.append(start_box(line, values, env))
                procs.append(boxes[-1])
            else:
                assert shlex.split(line) == ["sidecoach", "cluster", "check"], line
        assert len(boxes) == 2 and env["SIDECOACH_DATABASE_URL"].startswith("postgresql://")

        # 4. on any box: every line ok (once the boxes have linked up)
        last: list[subprocess.CompletedProcess[str]] = []

        async def all_ok() -> bool:
            last.append(cluster_check(env))
            return last[-1].returncode == 0

        await wait_async(all_ok, 30, lambda: last[-1].stdout + last[-1].stderr)
        lines = last[-1].stdout.splitlines()
        print(last[-1].stdout)
        assert [x.split()[0] for x in lines] == ["ok"] * 4, lines
        assert "live nodes: 2: box1" in lines[0] and "shared secret" in lines[1]
        assert "Redis secured: TLS" in lines[3]
        assert values.secret not in last[-1].stdout and values.password not in last[-1].stdout

        # a cross-box join: made on box1, taught on box1, coached from box2
        box1, box2 = (f"http://127.0.0.1:{p}" for p in values.box_ports.values())
        import aiohttp

        admin = {"Authorization": f"Bearer {issue_admin_token(values.secret, ttl_s=600)}"}
        async with (
            aiohttp.ClientSession(headers=admin) as http,
            http.post(f"{box1}/api/sessions", json={"title": "Recipe", "teacher_name": "T"}) as r,
        ):
            assert r.status == 201, await r.text()
            session_id = (await r.json())["session"]["id"]
        teacher = Participant(
            box1, issue_invite(values.secret, session_id, Role.TEACHER, ttl_s=600)
        )
        coach = Participant(box2, issue_invite(values.secret, session_id, Role.COACH, ttl_s=600))
        people += [teacher, coach]
        await teacher.join()
        await teacher.publish(PatternVideoTrack(), "camera")
        await coach.join()
        await wait_for(lambda: coach.tracks(source="camera"), timeout=20)
        video = coach.tracks(source="camera")[0]
        await wait_for(lambda: video.frames > 10, timeout=20)

        # the old recipe's mistake: a box without the shared secret
        old_env = {k: v for k, v in env.items() if k != "SIDECOACH_SECRET"}
        old_port = free_port()
        old = Proc(
            sidecoach(["sidecoach", "serve", "--node-id", "box3", "--port", str(old_port)])
            + [
                "--host",
                "127.0.0.1",
                "--data-dir",
                str(tmp_path / "data-box3"),
                "--ice-listen-ips",
                "127.0.0.1",
            ],  # fmt: skip
            tmp_path / "box3.log",
            env={**old_env, "SIDECOACH_NODE_URL": f"http://127.0.0.1:{old_port}"},
        )
        procs.append(old)
        old.wait_output("listening on", timeout=40)

        async def says_problem() -> bool:
            last.append(cluster_check(env))
            return "PROBLEM shared secret: box3 signs with another secret" in last[-1].stdout

        await wait_async(says_problem, 20, lambda: last[-1].stdout)
        print(last[-1].stdout)
        assert last[-1].returncode == 1
    finally:
        for p in people:
            await p.close()
        for proc in reversed(procs):
            proc.stop(timeout=10)
        postgres.stop()
    for proc in procs:  # no password or secret in any log
        log = proc.output()
        assert values.password not in log and values.secret not in log
    assert not os.path.exists(REPO / "data" / "tls")  # nothing written outside tmp
