"""A PostgreSQL server of its own for a test: Debian's ``postgresql``
binaries, ``initdb`` in a temporary directory, ``postgres`` listening on a
loopback port (trust authentication, nothing else reachable), stopped by
PID. Never the system's service. As root (CI), it runs as the ``postgres``
user (PostgreSQL refuses root)."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from testkit.procs import Proc, free_port


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def postgres_unavailable() -> str | None:
    if pg_bin() is None:
        return "PostgreSQL is not installed (Debian: apt install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no postgres user to run PostgreSQL as"
    return None


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *cmd]


class PostgresProc:
    """``url(name)``: a database on it (made by ``create``)."""

    def __init__(self) -> None:
        bin_dir = pg_bin()
        assert bin_dir is not None, postgres_unavailable()
        self.port = free_port()
        # not under pytest's tmp_path: the postgres user must reach it
        self.dir = Path(tempfile.mkdtemp(prefix="sidecoach-pg-"))
        os.chmod(self.dir, 0o755)
        data = self.dir / "data"
        data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(data, "postgres", "postgres")
        subprocess.run(
            _as_owner(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "--auth=trust",
                    "--username=postgres",
                    "--encoding=UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        cmd = [
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            str(self.dir),
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ]
        self.proc = Proc(_as_owner(cmd), self.dir / "postgres.log")
        self.proc.wait_output(r"ready to accept connections", timeout=60)

    def url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    async def create(self, name: str) -> str:
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    def create_sync(self, name: str) -> str:
        return asyncio.run(self.create(name))

    def stop(self) -> None:
        # SIGINT: PostgreSQL's fast shutdown (SIGTERM waits for every client)
        if self.proc.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.proc.wait(timeout=20)
        self.proc.stop(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)
