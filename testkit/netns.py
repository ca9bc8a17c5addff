"""Private network topologies for tests and benchmarks: network namespaces,
veth links between them, addresses, per-direction link shaping (loss, rate,
a full cut), and processes run inside; all torn down by PID.

    with Netlab(tmp_path) as lab:
        school = lab.namespace("school")
        link = lab.link(None, school, subnet=1)    # None: this process's namespace
        link.shape("up", loss_pct=5)               # school -> us loses 5 %
        proc = school.popen(["turnserver", ...], tmp_path / "x.log")
        browser_exe = school.wrapper("/usr/bin/chromium", tmp_path)

How it works, and why:

* A namespace is held by an *anchor* process, ``unshare -n`` running a
  bounded ``sleep``; a process runs inside with ``nsenter -t PID -n``.
  No ``ip netns add``: that needs /run/netns and, inside ``unshare -n``
  (where scripts/test runs the suite), a private mount namespace too.
  Anchors die with this process (PR_SET_PDEATHSIG) and at ``close()``; a
  veth disappears with the namespace holding one of its ends.
* Links are veth pairs with addresses in 198.18.0.0/15 (RFC 2544's range
  for benchmark networks): ``198.18.<subnet>.1`` on side ``a``,
  ``.2`` on side ``b``, and ``b`` routes everything via ``a``. These
  addresses exist only inside the namespaces a lab creates.
* Shaping is on a device's egress: "up" is ``b -> a`` (a participant's
  uplink when ``a`` is the server side), "down" is ``a -> b``.
  Loss uses an nftables ``netdev`` egress chain dropping a random share
  of IP packets (``numgen random``), which needs only nf_tables; rate uses
  ``tc tbf``; delay and jitter use a userspace box in namespace ``b``
  (testkit/netns_delay.py: TUN devices, a policy route and a ``tc mirred``
  redirect), not ``tc netem``, which this CI's kernel lacks: one way on
  every kernel.
* Everything refuses to run in the machine's initial network namespace
  (only inside a private one such as scripts/test's), and
  ``unavailable_reason()`` says why a machine cannot run it (tests skip
  with that reason; they never fail for it).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from testkit.procs import Proc, dies_with_parent

#: the first two octets of every lab address (RFC 2544 benchmarking range)
NET_PREFIX = "198.18"
#: an anchor (and so its namespace) outlives no test run by more than this
ANCHOR_LIFETIME_S = 1800
TOOLS = ("unshare", "nsenter", "ip", "nft", "tc")
#: every veth a lab makes is named <prefix><pid>x<n><a|b> (<= 15 characters)
DEVICE_PREFIX = "sc"

Direction = Literal["up", "down"]


class NetnsUnavailable(RuntimeError):
    """This machine (or this process) cannot build the topology asked for."""


def _run(cmd: Sequence[str], *, check: bool = True, timeout: float = 10) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise NetnsUnavailable(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


#: the inode of the initial network namespace (``PROC_NET_INIT_INO``, fixed
#: since Linux 5.7)
PROC_NET_INIT_INO = 0xEFFFFFF9


def in_private_netns() -> bool:
    """Whether this process is in a private network namespace: not the
    initial one, and with no interface but loopback and lab links (what
    scripts/test's ``unshare -n`` gives). Labs refuse to run elsewhere."""
    if os.stat("/proc/self/ns/net").st_ino == PROC_NET_INIT_INO:
        return False
    with contextlib.suppress(OSError):
        if os.stat("/proc/1/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino:
            return False
    names = [
        line.split(":")[1].strip().split("@")[0] for line in _run(["ip", "-o", "link"]).splitlines()
    ]
    return all(name == "lo" or name.startswith(DEVICE_PREFIX) for name in names)


@functools.cache
def unavailable_reason() -> str | None:
    """Why namespaces with veth links cannot be made here, or None."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing tools: {', '.join(missing)}"
    if not in_private_netns():
        return "refusing to touch the machine's own network: run inside `unshare -n` (scripts/test)"
    try:
        with Netlab(Path("/tmp")) as lab:
            ns = lab.namespace("probe")
            lab.link(None, ns, subnet=254)
    except (NetnsUnavailable, OSError, subprocess.SubprocessError) as exc:
        return f"cannot create a namespace with a veth link: {exc}"
    return None


class Namespace:
    """A network namespace held by an anchor process; loopback is up."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._anchor = subprocess.Popen(
            dies_with_parent([
                "unshare", "-n", "--", "sh", "-c",
                f"ip link set lo up && echo ready && exec sleep {ANCHOR_LIFETIME_S}",
            ]),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert self._anchor.stdout is not None
        line = self._anchor.stdout.readline()  # bounded: the anchor prints or exits
        if line.strip() != b"ready":
            err = self._anchor.stderr.read().decode(errors="replace") if self._anchor.stderr else ""
            self.close()
            raise NetnsUnavailable(f"namespace {name!r}: unshare -n failed: {err.strip()}")

    @property
    def pid(self) -> int:
        return self._anchor.pid

    def cmd(self, *args: str) -> list[str]:
        """``args`` as a command run inside this namespace."""
        return ["nsenter", "-t", str(self.pid), "-n", "--", *args]

    def run(
        self, *args: str, check: bool = True, timeout: float = 10
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.cmd(*args), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise NetnsUnavailable(f"in {self.name}: {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def popen(
        self,
        args: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        stdin_pipe: bool = False,
    ) -> Proc:
        """Start ``args`` inside this namespace (stopped by PID by its owner)."""
        return Proc(self.cmd(*args), log_path, env=env, stdin_pipe=stdin_pipe)

    def block_udp(self, *, except_ports: Sequence[int] = ()) -> None:
        """A school firewall: no UDP leaves this namespace (loopback aside)
        except to ``except_ports``; TCP is untouched."""
        allow = f" udp dport != {{ {', '.join(map(str, except_ports))} }}" if except_ports else ""
        rules = (
            "table inet sidecoach_firewall {\n"
            "  chain output {\n"
            "    type filter hook output priority 0; policy accept;\n"
            f'    oifname != "lo" meta l4proto udp{allow} counter drop\n'
            "  }\n}\n"
        )
        proc = subprocess.run(
            self.cmd("nft", "-f", "-"), input=rules, capture_output=True, text=True, timeout=10
        )
        if proc.returncode != 0:
            raise NetnsUnavailable(f"in {self.name}: firewall: {proc.stderr.strip()}")

    def wrapper(self, executable: str, directory: Path) -> Path:
        """An executable script that runs ``executable`` inside this
        namespace with its arguments (e.g. Playwright's ``executable_path``)."""
        path = directory / f"in-{self.name}-{Path(executable).name}"
        path.write_text(f'#!/bin/sh\nexec nsenter -t {self.pid} -n -- {executable} "$@"\n')
        path.chmod(0o755)
        return path

    def close(self) -> None:
        if self._anchor.poll() is None:
            self._anchor.send_signal(signal.SIGKILL)
        self._anchor.wait(timeout=10)
        for stream in (self._anchor.stdout, self._anchor.stderr):
            if stream is not None:
                stream.close()


@dataclass
class Link:
    """A veth pair: side ``a`` (None = this process's namespace) has
    ``a_ip``, side ``b`` has ``b_ip``, both /24."""

    a: Namespace | None
    b: Namespace
    a_dev: str
    b_dev: str
    a_ip: str
    b_ip: str
    #: where the delay box's log goes, and the lab's process list it joins
    tmp_dir: Path = Path("/tmp")
    procs: list[Proc] = field(default_factory=list)
    _tables: set[Direction] = field(default_factory=set)
    _box: Proc | None = None
    _box_replies: int = 0

    def _side(self, direction: Direction) -> tuple[Namespace | None, str]:
        """The namespace and device whose egress carries ``direction``."""
        return (self.b, self.b_dev) if direction == "up" else (self.a, self.a_dev)

    def _exec(self, ns: Namespace | None, *args: str, stdin: str | None = None) -> None:
        cmd = list(args) if ns is None else ns.cmd(*args)
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=10)
        if proc.returncode != 0:
            raise NetnsUnavailable(f"{' '.join(args)}: {proc.stderr.strip()}")

    def shape(
        self,
        direction: Direction,
        *,
        loss_pct: float = 0.0,
        rate_kbit: int | None = None,
        delay_ms: float = 0.0,
        jitter_ms: float = 0.0,
    ) -> None:
        """Replace the shaping of one direction (all zero/None: a clean link).

        Delay and jitter (each packet held ``delay ± jitter`` ms, drawn
        independently, so they may reorder) come from the userspace box of
        testkit/netns_delay.py, started the first time they are asked for."""
        ns, dev = self._side(direction)
        self._set_loss(direction, loss_pct)
        if delay_ms or jitter_ms or self._box is not None:
            self._set_delay(direction, delay_ms, jitter_ms)
        if self._has_qdisc(ns, dev):
            self._exec(ns, "tc", "qdisc", "del", "dev", dev, "root")
        if rate_kbit:
            # a bottleneck queue of ~100 ms at the rate, as a Wi-Fi/DSL uplink has
            burst = max(3200, rate_kbit * 1000 // 8 // 50)
            self._exec(
                ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf",
                "rate", f"{rate_kbit}kbit", "burst", str(burst), "latency", "100ms",
            )  # fmt: skip

    def _set_delay(self, direction: Direction, delay_ms: float, jitter_ms: float) -> None:
        if self._box is None:
            args = ["ip", "-o", "link", "show", self.a_dev]
            out = _run(args if self.a is None else self.a.cmd(*args))
            mac = out.split("link/ether")[1].split()[0]
            self._box = self.b.popen(
                [
                    sys.executable, "-m", "testkit.netns_delay",
                    "--dev", self.b_dev, "--peer-mac", mac,
                ],
                self.tmp_dir / f"delay-{self.b_dev}.log",
                stdin_pipe=True,
            )
            self.procs.append(self._box)
            self._box.wait_output('"event": "ready"', timeout=10)
        self._box_replies += 1
        self._box.send_line(f"{direction} {delay_ms:g} {jitter_ms:g}")
        self._box_reply("set", self._box_replies)

    def _box_reply(self, event: str, count: int) -> dict[str, Any]:
        assert self._box is not None
        deadline = time.monotonic() + 10
        while True:
            lines = [json.loads(x) for x in self._box.output().splitlines() if x.startswith("{")]
            replies = [x for x in lines if x.get("event") in ("set", "stats", "error")]
            if len(replies) >= count:
                reply: dict[str, Any] = replies[count - 1]
                if reply["event"] != event:
                    raise NetnsUnavailable(f"delay box: {reply}")
                return reply
            if self._box.proc.poll() is not None or time.monotonic() > deadline:
                raise NetnsUnavailable(f"delay box did not answer:\n{self._box.output()[-2000:]}")
            time.sleep(0.02)

    def delayed(self) -> dict[str, dict[str, float]]:
        """The delay box's counters per direction (passed, dropped, queued);
        empty when no delay was ever asked for."""
        if self._box is None:
            return {}
        self._box_replies += 1
        self._box.send_line("stats")
        reply = self._box_reply("stats", self._box_replies)
        return {d: reply[d] for d in ("up", "down")}

    def cut(self, direction: Direction | None = None) -> None:
        """Drop every IP packet (both directions unless one is given)."""
        directions: tuple[Direction, ...] = (direction,) if direction else ("up", "down")
        for d in directions:
            self._set_loss(d, 100.0)

    def restore(self) -> None:
        """Both directions clean again."""
        self.shape("up")
        self.shape("down")

    def dropped(self, direction: Direction) -> int:
        """Packets the loss rule of ``direction`` has dropped so far."""
        if direction not in self._tables:
            return 0
        ns, dev = self._side(direction)
        args = ["nft", "list", "table", "netdev", _table(dev)]
        out = subprocess.run(
            args if ns is None else ns.cmd(*args), capture_output=True, text=True, timeout=10
        ).stdout
        words = out.split()
        return int(words[words.index("packets") + 1]) if "packets" in words else 0

    def _has_qdisc(self, ns: Namespace | None, dev: str) -> bool:
        args = ["tc", "qdisc", "show", "dev", dev, "root"]
        out = subprocess.run(
            args if ns is None else ns.cmd(*args), capture_output=True, text=True, timeout=10
        ).stdout
        return any(q in out for q in ("tbf", "netem"))

    def _set_loss(self, direction: Direction, loss_pct: float) -> None:
        ns, dev = self._side(direction)
        table = _table(dev)
        if direction in self._tables:
            self._exec(ns, "nft", "delete", "table", "netdev", table)
            self._tables.discard(direction)
        if loss_pct <= 0:
            return
        per_10k = round(loss_pct * 100)
        chance = "" if per_10k >= 10000 else f" numgen random mod 10000 < {per_10k}"
        self._exec(
            ns, "nft", "-f", "-",
            stdin=(
                f"table netdev {table} {{\n"
                f"  chain egress {{\n"
                f'    type filter hook egress device "{dev}" priority 0; policy accept;\n'
                f"    meta protocol {{ ip, ip6 }}{chance} counter drop\n"
                f"  }}\n}}\n"
            ),
        )  # fmt: skip
        self._tables.add(direction)


def _table(dev: str) -> str:
    return f"sidecoach_{dev}"


class Netlab:
    """Owns namespaces, links and processes; ``close()`` (or leaving the
    ``with`` block) stops the processes, then the anchors, by PID."""

    def __init__(self, tmp_dir: Path) -> None:
        if not in_private_netns():
            raise NetnsUnavailable(
                "refusing to touch the machine's own network: run inside `unshare -n`"
            )
        self.tmp_dir = tmp_dir
        self.namespaces: list[Namespace] = []
        self.links: list[Link] = []
        self.procs: list[Proc] = []
        self._tag = f"{os.getpid() % 100000}"

    def __enter__(self) -> Netlab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def namespace(self, name: str) -> Namespace:
        ns = Namespace(name)
        self.namespaces.append(ns)
        return ns

    def link(self, a: Namespace | None, b: Namespace, *, subnet: int) -> Link:
        """A veth pair ``a`` <-> ``b`` on 198.18.<subnet>.0/24; ``b`` routes
        everything through ``a``."""
        n = len(self.links)
        a_dev, b_dev = f"{DEVICE_PREFIX}{self._tag}x{n}a", f"{DEVICE_PREFIX}{self._tag}x{n}b"
        a_ip, b_ip = f"{NET_PREFIX}.{subnet}.1", f"{NET_PREFIX}.{subnet}.2"
        _run(["ip", "link", "add", a_dev, "type", "veth", "peer", "name", b_dev,
              "netns", str(b.pid)])  # fmt: skip
        if a is not None:
            _run(["ip", "link", "set", a_dev, "netns", str(a.pid)])
        link = Link(a, b, a_dev, b_dev, a_ip, b_ip, tmp_dir=self.tmp_dir, procs=self.procs)
        self.links.append(link)
        a_cmd = (lambda *args: list(args)) if a is None else a.cmd
        _run(a_cmd("ip", "addr", "add", f"{a_ip}/24", "dev", a_dev))
        _run(a_cmd("ip", "link", "set", a_dev, "up"))
        b.run("ip", "addr", "add", f"{b_ip}/24", "dev", b_dev)
        b.run("ip", "link", "set", b_dev, "up")
        b.run("ip", "route", "add", "default", "via", a_ip)
        return link

    def popen(
        self,
        ns: Namespace,
        args: Sequence[str],
        name: str,
        env: dict[str, str] | None = None,
        stdin_pipe: bool = False,
    ) -> Proc:
        """Start ``args`` in ``ns``, logged to ``tmp_dir/<name>.log``; stopped at close."""
        proc = ns.popen(args, self.tmp_dir / f"{name}.log", env=env, stdin_pipe=stdin_pipe)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop()
        for link in self.links:
            if link.a is None:  # the end in our own namespace: delete it now (with
                # its peer and nft chain) instead of waiting for the kernel's
                # asynchronous clean-up of the dead namespace
                _run(["ip", "link", "del", link.a_dev], check=False)
                for d in list(link._tables):
                    _run(["nft", "delete", "table", "netdev", _table(link.a_dev)], check=False)
                    link._tables.discard(d)
        for ns in reversed(self.namespaces):
            ns.close()
        self.procs, self.links, self.namespaces = [], [], []
