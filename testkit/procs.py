"""Processes a test starts itself (a Sidecoach server from the CLI, nginx,
coturn...): started with a log file, waited for with a bound, and stopped by
PID (SIGTERM, then SIGKILL) whatever happens in the test."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def dies_with_parent(cmd: Sequence[str]) -> list[str]:
    """``cmd`` run so that it gets SIGTERM if the test process dies: through
    util-linux's ``setpriv --pdeathsig``, which sets it after the fork in a
    program of its own. (A ``preexec_fn`` loading libc with ctypes in the
    forked child once hung the test run: ``dlopen`` after a fork, with other
    threads running, waited for a lock nobody would release.)"""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *cmd] if setpriv else list(cmd)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Proc:
    """One child process with its output in ``log_path``."""

    def __init__(
        self,
        cmd: Sequence[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path = REPO,
        stdin_pipe: bool = False,
    ) -> None:
        self.cmd = list(cmd)
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            dies_with_parent(self.cmd),
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def wait_output(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait (bounded) until the output matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.output())
            if match:
                return match
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.cmd[0]} exited ({self.proc.returncode}) before printing "
                    f"{pattern!r}:\n{self.output()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.cmd[0]} did not print {pattern!r} within {timeout:.0f}s:\n"
                    f"{self.output()[-3000:]}"
                )
            time.sleep(0.05)

    def send_line(self, line: str) -> None:
        """Write a line to the process's stdin (``stdin_pipe=True``)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode


@contextlib.contextmanager
def running(proc: Proc) -> Iterator[Proc]:
    try:
        yield proc
    finally:
        proc.stop()


def sidecoach_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "server", *args]


def sidecoach_env(**settings: str) -> dict[str, str]:
    """This environment without SIDECOACH_* settings, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECOACH_")}
    env.update(settings)
    return env
