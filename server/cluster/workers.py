"""``sidecoach serve --workers N``: one node process per core on one box
(mediasoup runs one worker per core the same way).

Every worker is a full node of the deployment (same Redis, same data
directory: the SQLite files are shared in WAL mode), listening on the same
port (SO_REUSEPORT: the kernel spreads new connections over them) and on a
loopback port of its own, its node URL, where the other workers relay
signaling to it and forward long-polling requests for its sockets. This
process only starts them, restarts one that dies (after a pause that grows
while it keeps dying), and passes SIGTERM/SIGINT on: the first drains every
worker, a second makes them exit at once.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from server.core.config import Config, node_id_of

logger = logging.getLogger(__name__)

#: a worker that dies within this long after starting counts as crashing
CRASH_WINDOW_S = 10.0
MAX_RESTART_DELAY_S = 30.0
#: flags of ``serve`` that the parent handles itself
_PARENT_FLAGS = {"--workers": True, "--demo": False, "--node-id": True, "--reuse-port": False}


def worker_count(asked: int) -> int:
    """``--workers`` with no number (0): one per core."""
    return asked if asked > 0 else (os.cpu_count() or 1)


def worker_argv(argv: list[str], node_id: str) -> list[str]:
    """This command line for one worker: without the parent's flags, with
    its node id and the shared port."""
    out: list[str] = []
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _PARENT_FLAGS:
            takes_value = _PARENT_FLAGS[name] and "=" not in arg
            if takes_value and name == "--workers":
                # --workers has an optional number
                nxt = argv[i + 1] if i + 1 < len(argv) else ""
                takes_value = nxt.isdigit()
            skip = takes_value
            continue
        out.append(arg)
    if "serve" not in out:
        out.insert(0, "serve")
    return [*out, "--reuse-port", "--node-id", node_id]


def _dies_with_supervisor(cmd: list[str]) -> list[str]:
    """A worker gets SIGTERM if the supervisor dies: util-linux's
    ``setpriv --pdeathsig`` sets it after the fork, so no Python runs in the
    forked child (a ``preexec_fn`` loading libc there can deadlock in
    ``dlopen`` when another thread held its lock at the fork)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *cmd] if setpriv else cmd


@dataclass
class _Worker:
    node_id: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    delay: float = 1.0
    restart_at: float | None = None
    #: stop signals passed on to this worker's current process
    signalled: int = 0

    def start(self) -> None:
        cmd = [sys.executable, "-m", "server", *self.argv]
        self.proc = subprocess.Popen(_dies_with_supervisor(cmd))
        self.started = time.monotonic()
        self.restart_at = None
        self.signalled = 0


def run_workers(config: Config, asked: int, argv: list[str]) -> int:
    count = worker_count(asked)
    base = node_id_of(config)
    workers = [_Worker(f"{base}-w{i}", worker_argv(argv, f"{base}-w{i}")) for i in range(count)]
    stopping = {"signals": 0}

    def on_signal(signum: int, frame: object) -> None:
        stopping["signals"] += 1  # passed on by the loop below (no race with a restart)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(
        f"Sidecoach: {count} workers ({workers[0].node_id} ... {workers[-1].node_id})"
        f" on port {config.port}",
        flush=True,
    )
    for w in workers:
        w.start()
    while True:
        now = time.monotonic()
        alive = 0
        for w in workers:
            if w.proc is not None and w.proc.poll() is None:
                alive += 1
                while w.signalled < stopping["signals"]:  # first: drain; second: now
                    w.signalled += 1
                    w.proc.send_signal(signal.SIGTERM)
                continue
            if stopping["signals"]:
                continue
            if w.restart_at is None:
                code = w.proc.returncode if w.proc is not None else None
                crashed = now - w.started < CRASH_WINDOW_S
                w.delay = min(MAX_RESTART_DELAY_S, w.delay * 2) if crashed else 1.0
                w.restart_at = now + w.delay
                logger.error(
                    "worker %s exited (%s); restarting it in %.0f s", w.node_id, code, w.delay
                )
                print(
                    f"worker {w.node_id} exited ({code}); restarting", file=sys.stderr, flush=True
                )
            elif now >= w.restart_at:
                w.restarts += 1
                w.start()
                alive += 1
        if stopping["signals"] and not alive:
            return 0
        time.sleep(0.2)
