"""A deployment of several nodes for tests: a real ``redis-server`` and real
Sidecoach processes on loopback ports, each started with a log file and
stopped by PID (testkit/procs.py). ``kill()`` is ``kill -9``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from server.cluster.certs import make_redis_tls
from server.core.roles import Role
from server.core.tokens import issue_admin_token, issue_invite
from testkit.peers import Participant
from testkit.procs import Proc, free_port, sidecoach_cmd, sidecoach_env

SECRET = "multinode-secret-" + "m" * 40


async def wait_async(
    check: Callable[[], Awaitable[bool]], timeout: float, what: Callable[[], str]
) -> None:
    """Poll an async ``check`` until true; fail saying ``what()`` otherwise."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what()}")
        await asyncio.sleep(0.1)


def redis_unavailable() -> str | None:
    return None if shutil.which("redis-server") else "redis-server is not installed"


class RedisProc:
    """A redis-server on a loopback port, no persistence; ``secure``: as an
    operator secures it, TLS only (a certificate from ``sidecoach cluster
    redis-tls``'s code) and an ACL user with a password (the default user
    off), so ``url`` is ``rediss://sidecoach:PASSWORD@127.0.0.1:PORT/0`` and
    ``tls_ca`` the CA file nodes need."""

    def __init__(
        self, workdir: Path, port: int | None = None, *, persist: bool = False, secure: bool = False
    ) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        #: appendonly (fsync every second): what a Redis used as the session store needs
        self.persist = persist
        self.secure = secure
        self.password = "redis-pw-" + secrets.token_hex(12) if secure else ""
        self.tls_ca: Path | None = None
        self._tls_args: list[str] = []
        if secure:
            tls = make_redis_tls(workdir / "tls", ["127.0.0.1", "localhost"])
            self.tls_ca = tls.ca
            self._tls_args = [
                "--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(tls.cert),
                "--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.ca),
                "--tls-auth-clients", "no", "--user", "default", "off", "--user", "sidecoach",
                "on", f">{self.password}", "~sidecoach:*", "+@all", "-@dangerous",
            ]  # fmt: skip
            self.url = f"rediss://sidecoach:{self.password}@127.0.0.1:{self.port}/0"
        else:
            self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: Proc | None = None
        self.start()

    def node_env(self) -> dict[str, str]:
        """What a node needs to reach this Redis (the URL holds the password)."""
        env = {"SIDECOACH_REDIS_URL": self.url}
        if self.tls_ca is not None:
            env["SIDECOACH_REDIS_TLS_CA"] = str(self.tls_ca)
        return env

    def client(self) -> Any:
        """A redis-py client with this Redis's credentials (no deployment secret)."""
        import redis.asyncio as aioredis

        tls = {"ssl_ca_certs": str(self.tls_ca)} if self.tls_ca is not None else {}
        return aioredis.Redis.from_url(self.url, decode_responses=True, **tls)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        port = [] if self.secure else ["--port", str(self.port)]
        cmd = [
            "redis-server", *port, "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes" if self.persist else "no", "--dir", str(self.workdir),
            *self._tls_args,
        ]  # fmt: skip
        self.proc = Proc(cmd, self.workdir / f"redis-{time.monotonic_ns()}.log")
        self.proc.wait_output(r"Ready to accept connections", timeout=15)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.proc.wait(timeout=5)
        self.proc.stop()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


@dataclass
class Node:
    name: str
    port: int
    data_dir: Path
    proc: Proc
    url: str = ""

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}"

    def participant(self, session_id: str, role: Role | str, **kw: Any) -> Participant:
        token = issue_invite(SECRET, session_id, Role(role), ttl_s=3600)
        return Participant(self.url, token, **kw)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await http(self.url, "GET", path, **kw)

    def kill(self) -> None:
        """kill -9."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.proc.wait(timeout=5)
        self.proc.stop()


async def http(
    base: str, method: str, path: str, *, json: Any = None, admin: bool = True
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {issue_admin_token(SECRET, ttl_s=600)}"} if admin else {}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as client,
        client.request(method, base + path, json=json, headers=headers) as resp,
    ):
        try:
            body = await resp.json(content_type=None)
        except ValueError:
            body = await resp.text()
        return resp.status, body


@dataclass
class Deployment:
    workdir: Path
    redis: RedisProc
    shared_data: bool = True
    nodes: dict[str, Node] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)

    def start_nodes(self, *names: str) -> list[Node]:
        """Start several nodes at once (each waits for the others' imports)."""
        nodes = [self.start_node(name, wait=False) for name in names]
        for node in nodes:
            node.proc.wait_output(r"listening on", timeout=30)
        return nodes

    def start_node(self, name: str, *args: str, port: int | None = None, wait: bool = True) -> Node:
        port = port or free_port()
        data_dir = self.workdir / ("data" if self.shared_data else f"data-{name}")
        env = sidecoach_env(
            SIDECOACH_SECRET=SECRET,
            # placement by session count only: a node busy starting up on a
            # shared machine must not move a session the test puts somewhere
            SIDECOACH_LIMIT_NODE_BUSY_CPU_PCT="10000",
            **self.redis.node_env(),
            **self.extra_env,
        )
        cmd = sidecoach_cmd(
            "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir),
            "--ice-listen-ips", "127.0.0.1", "--node-id", name, *args,
        )  # fmt: skip
        proc = Proc(cmd, self.workdir / f"{name}-{time.monotonic_ns()}.log", env=env)
        node = Node(name, port, data_dir, proc)
        self.nodes[name] = node
        if wait:
            proc.wait_output(r"listening on", timeout=30)
        return node

    async def wait_nodes(self, count: int, timeout: float = 15) -> None:
        """Until every running node sees ``count`` live nodes."""
        deadline = time.monotonic() + timeout
        while True:
            seen = []
            for node in self.nodes.values():
                if node.proc.proc.poll() is not None:
                    continue
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    _, body = await node.get("/readyz")
                    seen.append(len(body.get("nodes", [])) if isinstance(body, dict) else 0)
            if seen and all(n == count for n in seen):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"nodes see {seen} live nodes, expected {count}")
            await asyncio.sleep(0.1)

    async def create_session(self, via: Node, title: str = "Fractions", **settings: Any) -> str:
        status, body = await http(
            via.url,
            "POST",
            "/api/sessions",
            json={"title": title, "teacher_name": "Ms. Rivera", "settings": settings or None},
        )
        assert status == 201, body
        return str(body["session"]["id"])

    def logs(self) -> str:
        return "\n".join(f"===== {n.name}\n{n.proc.output()[-4000:]}" for n in self.nodes.values())

    def stop(self) -> None:
        for node in self.nodes.values():
            node.proc.stop(timeout=10)
        self.redis.stop()


@contextlib.contextmanager
def deployment(
    workdir: Path, *, redis_store: bool = False, secure: bool = False, **kw: Any
) -> Iterator[Deployment]:
    """Nodes sharing one data directory (one box), or each with its own and
    the sessions in Redis (``redis_store``: several boxes); ``secure``:
    Redis with TLS and an ACL user's password."""
    redis = RedisProc(workdir / "redis", persist=redis_store, secure=secure)
    if redis_store:
        kw["shared_data"] = False
        kw.setdefault("extra_env", {})["SIDECOACH_STORE"] = "redis"
    dep = Deployment(workdir, redis, **kw)
    try:
        yield dep
    finally:
        dep.stop()
