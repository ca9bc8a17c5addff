"""Debian's coturn for tests: a TURN relay configured as the README does
(the TURN REST secret; private ranges denied as peers except the Sidecoach
host), listening on one address, stopped by PID by its owner."""

from __future__ import annotations

import shutil
from pathlib import Path

from testkit.procs import Proc

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
TURN_REALM = "sidecoach.test"


def coturn(
    hub_ip: str, port: int, relay_ports: tuple[int, int], log: Path, *, secret: str
) -> Proc:
    """coturn on ``hub_ip:port`` (UDP and TCP) with REST secret ``secret``,
    relaying only to ``hub_ip`` (the Sidecoach host)."""
    return Proc(
        [
            TURNSERVER, "-n", "--no-cli", "--no-tls", "--no-dtls", "--simple-log",
            "--log-file=stdout", "--verbose", "--no-software-attribute",
            f"--listening-ip={hub_ip}", f"--relay-ip={hub_ip}", f"--listening-port={port}",
            f"--min-port={relay_ports[0]}", f"--max-port={relay_ports[1]}",
            "--use-auth-secret", f"--static-auth-secret={secret}", f"--realm={TURN_REALM}",
            "--fingerprint", "--no-multicast-peers",
            "--denied-peer-ip=198.18.0.0-198.19.255.255", f"--allowed-peer-ip={hub_ip}",
            f"--userdb={log.parent / 'turndb'}", f"--pidfile={log.parent / 'turnserver.pid'}",
        ],
        log,
    )  # fmt: skip
