"""Janus as the baseline of the forwarding benchmarks: Debian's ``janus``
(VideoRoom plugin, HTTP transport) started with a minimal configuration
written to a temporary folder, and a small client for its VideoRoom API.

Janus (libnice) never gathers ICE candidates on a loopback interface, so a
benchmark that measures it first moves into a network namespace of its own
(``reexec_in_own_netns``: it runs itself again under ``unshare -n``, then
brings ``lo`` up) and gives it a veth pair with an address in 198.18.0.0/15
(RFC 2544's benchmarking range, ``add_bench_address``). Janus and every
client gather candidates on that address only; nothing leaves the
namespace. Sidecoach is pointed at the same address, so both servers see
the same kernel path.

Used by ``bench_forwarding.py`` and ``bench_capacity.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import benchlib
from aiortc import RTCPeerConnection, RTCSessionDescription

log = logging.getLogger("bench.janus")

JANUS_BIN = "/usr/bin/janus"
JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
#: the address Janus, Sidecoach and the bench's clients use for media
BENCH_IP = "198.18.0.1"
BENCH_PEER_IP = "198.18.0.2"
BENCH_PREFIX = 15
#: the veth pair made in the bench's own namespace (names <= 15 characters)
BENCH_DEV = "scbench0"
BENCH_PEER_DEV = "scbench1"
#: the environment variable a re-run under ``unshare -n`` is marked with
NETNS_CHILD_ENV = "SIDECOACH_BENCH_OWN_NETNS"
#: Janus's ``bitrate`` cap for the publisher (REMB), above the clip's rate
ROOM_BITRATE_BPS = 4_000_000
#: how long one Janus API request or event may take, s
JANUS_TIMEOUT_S = 20.0
#: the long poll asks for at most this many events at once
MAX_EVENTS_PER_POLL = 16
#: the bench room's number
ROOM_ID = 4242


def janus_unavailable() -> str | None:
    """Why Janus cannot run here, or None."""
    if not os.access(JANUS_BIN, os.X_OK):
        return f"{JANUS_BIN} is missing (apt-get install janus; scripts/test installs it)"
    for sub, name in (("plugins", "libjanus_videoroom.so"), ("transports", "libjanus_http.so")):
        if not (JANUS_LIB / sub / name).exists():
            return f"{JANUS_LIB / sub / name} is missing"
    return None


# ------------------------------------------------------------ namespace ----


def reexec_in_own_netns(script: str) -> None:
    """Run this script again in a network namespace of its own (``unshare
    -n``, then ``lo`` up), unless this already is that re-run."""
    if os.environ.get(NETNS_CHILD_ENV) == "1":
        return
    env = {**os.environ, NETNS_CHILD_ENV: "1"}
    cmd = ["unshare", "-n", "--", "bash", "-c", 'ip link set lo up && exec "$@"', "bash",
           sys.executable, *sys.argv]  # fmt: skip
    try:
        sys.exit(subprocess.run(cmd, env=env, cwd=benchlib.ROOT).returncode)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as exc:
        sys.exit(f"{script}: cannot run under unshare -n: {exc}")


def add_bench_address() -> None:
    """Give this (private) namespace a veth pair, ``BENCH_IP`` on one end.
    Refuses to run outside the namespace ``reexec_in_own_netns`` made."""
    if os.environ.get(NETNS_CHILD_ENV) != "1":
        raise RuntimeError("refusing to add interfaces outside the bench's own namespace")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    if BENCH_DEV in links.stdout:
        return
    for cmd in (
        ["ip", "link", "add", BENCH_DEV, "type", "veth", "peer", "name", BENCH_PEER_DEV],
        ["ip", "addr", "add", f"{BENCH_IP}/{BENCH_PREFIX}", "dev", BENCH_DEV],
        ["ip", "addr", "add", f"{BENCH_PEER_IP}/{BENCH_PREFIX}", "dev", BENCH_PEER_DEV],
        ["ip", "link", "set", BENCH_DEV, "up"],
        ["ip", "link", "set", BENCH_PEER_DEV, "up"],
    ):
        subprocess.run(cmd, check=True, capture_output=True, timeout=10)


# -------------------------------------------------------------- process ----


def _jcfg(sections: dict[str, dict[str, Any]]) -> str:
    """Janus's libconfig-style configuration text."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        return '"' + str(v).replace('"', "") + '"'

    out = []
    for name, items in sections.items():
        out.append(f"{name}: {{")
        out += [f"\t{k} = {value(v)}" for k, v in items.items()]
        out.append("}")
    return "\n".join(out) + "\n"


class JanusProcess(benchlib.ServerProcess):
    """``janus`` with the VideoRoom plugin and the HTTP transport only, its
    API on 127.0.0.1, ICE on ``ice_ip`` only (a Janus this bench starts
    and stops, by PID)."""

    def __init__(self, workdir: Path, ice_ip: str) -> None:
        port = benchlib.free_port()
        conf, plugins, transports, empty = (workdir / d for d in
                                            ("conf", "plugins", "transports", "empty"))  # fmt: skip
        for folder in (conf, plugins, transports, empty):
            folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            (plugins / "libjanus_videoroom.so").symlink_to(
                JANUS_LIB / "plugins" / "libjanus_videoroom.so"
            )
        with contextlib.suppress(FileExistsError):
            (transports / "libjanus_http.so").symlink_to(
                JANUS_LIB / "transports" / "libjanus_http.so"
            )
        (conf / "janus.jcfg").write_text(_jcfg({
            "general": {
                "configs_folder": str(conf), "plugins_folder": str(plugins),
                "transports_folder": str(transports), "events_folder": str(empty),
                "loggers_folder": str(empty), "debug_level": 3, "session_timeout": 0,
                "server_name": "sidecoach-bench", "interface": ice_ip,
            },
            "media": {"rtp_port_range": "40000-49999"},
            "nat": {"nice_debug": False, "ice_enforce_list": ice_ip, "ignore_mdns": True},
            "events": {"broadcast": False},
        }))  # fmt: skip
        (conf / "janus.plugin.videoroom.jcfg").write_text(_jcfg({"general": {}}))
        (conf / "janus.transport.http.jcfg").write_text(_jcfg({
            "general": {"json": "compact", "base_path": "/janus", "http": True, "port": port,
                        "ip": "127.0.0.1", "https": False},
            "admin": {"admin_http": False, "admin_https": False},
        }))  # fmt: skip
        cmd = [JANUS_BIN, "-C", str(conf / "janus.jcfg"), "-F", str(conf), "-o", "-d", "3"]
        url = f"http://127.0.0.1:{port}"
        super().__init__("janus", cmd, dict(os.environ), workdir / "janus.log", url)
        self.api = url + "/janus"
        self.health_path = "/janus/info"


# --------------------------------------------------------------- client ----


class JanusError(RuntimeError):
    pass


class JanusSession:
    """One Janus API session over HTTP, with a long-poll task that sorts
    asynchronous events by handle."""

    def __init__(self, api: str) -> None:
        self.api = api
        self._http: aiohttp.ClientSession | None = None
        self.session_id = 0
        self._tx = itertools.count(1)
        self._events: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._poll: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        reply = await self._post(self.api, {"janus": "create"})
        self.session_id = int(reply["data"]["id"])
        self._poll = asyncio.ensure_future(self._long_poll())

    async def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self._http is not None
        body = {**body, "transaction": f"t{next(self._tx)}"}
        timeout = aiohttp.ClientTimeout(total=JANUS_TIMEOUT_S)
        async with self._http.post(url, json=body, timeout=timeout) as resp:
            reply: dict[str, Any] = await resp.json(content_type=None)
        if reply.get("janus") == "error":
            raise JanusError(f"{body.get('janus')}: {reply.get('error')}")
        return reply

    async def _long_poll(self) -> None:
        assert self._http is not None
        url = f"{self.api}/{self.session_id}?maxev={MAX_EVENTS_PER_POLL}"
        while True:
            try:
                async with self._http.get(url) as resp:
                    events = await resp.json(content_type=None)
            except (aiohttp.ClientError, ValueError) as exc:
                log.warning("janus long poll: %s", exc)
                await asyncio.sleep(0.5)
                continue
            for event in events if isinstance(events, list) else [events]:
                sender = event.get("sender")
                log.debug("janus event %s", event)
                if isinstance(sender, int):
                    self._events.setdefault(sender, asyncio.Queue()).put_nowait(event)

    async def attach(self) -> int:
        reply = await self._post(
            f"{self.api}/{self.session_id}",
            {"janus": "attach", "plugin": "janus.plugin.videoroom"},
        )
        handle = int(reply["data"]["id"])
        self._events.setdefault(handle, asyncio.Queue())
        return handle

    async def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        return await self._post(f"{self.api}/{self.session_id}/{handle}", msg)

    async def event(self, handle: int, accept: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The next event of ``handle`` that ``accept`` takes (others are
        dropped); JanusError if the plugin reports an error first."""
        queue = self._events.setdefault(handle, asyncio.Queue())
        async with asyncio.timeout(JANUS_TIMEOUT_S):
            while True:
                event = await queue.get()
                data = event.get("plugindata", {}).get("data", {})
                if "error" in data:
                    raise JanusError(f"handle {handle}: {data['error']}")
                if accept(event):
                    return event

    async def close(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poll
        if self._http is not None:
            with contextlib.suppress(Exception):
                await self._post(f"{self.api}/{self.session_id}", {"janus": "destroy"})
            await self._http.close()


def _jsep(pc: RTCPeerConnection) -> dict[str, Any]:
    desc = pc.localDescription
    return {"type": desc.type, "sdp": desc.sdp, "trickle": False}


class VideoRoom:
    """The bench's room: one publisher, any number of subscribers."""

    def __init__(self, janus: JanusSession, ice_ips: tuple[str, ...]) -> None:
        self.janus = janus
        self.ice_ips = ice_ips
        self.publisher_id: int | None = None

    async def create(self) -> None:
        handle = await self.janus.attach()
        reply = await self.janus.message(handle, {
            "request": "create", "room": ROOM_ID, "publishers": 1, "bitrate": ROOM_BITRATE_BPS,
            "fir_freq": 0, "videocodec": "vp8", "audiocodec": "opus", "record": False,
            "notify_joining": False, "permanent": False,
        })  # fmt: skip
        data = reply.get("plugindata", {}).get("data", {})
        if data.get("videoroom") != "created":
            raise JanusError(f"create room: {reply}")

    async def publish(self, pc: RTCPeerConnection) -> None:
        """Join as the publisher with ``pc``'s offer; apply Janus's answer."""
        from server.media.aiortc_adapter import restrict_ice

        handle = await self.janus.attach()
        offer = await pc.createOffer()
        restrict_ice(pc, self.ice_ips, None)
        await pc.setLocalDescription(offer)
        await self.janus.message(
            handle,
            {"request": "joinandconfigure", "room": ROOM_ID, "ptype": "publisher",
             "display": "bench publisher"},
            _jsep(pc),
        )  # fmt: skip
        event = await self.janus.event(handle, lambda e: "jsep" in e)
        data = event["plugindata"]["data"]
        self.publisher_id = int(data["id"])
        answer = event["jsep"]
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        # the feed exists for subscribers once its PeerConnection is up
        await self.janus.event(handle, lambda e: e.get("janus") == "webrtcup")

    async def subscribe(
        self,
        pc: RTCPeerConnection,
        on_track: Callable[[], None],
        edit_answer: Callable[[str], str] = lambda sdp: sdp,
    ) -> None:
        """Subscribe ``pc`` to the publisher: Janus offers, ``pc`` answers
        (``on_track`` runs between the two, to tap the new receiver; the
        answer's SDP goes through ``edit_answer``)."""
        from server.media.aiortc_adapter import restrict_ice

        if self.publisher_id is None:
            raise JanusError("no publisher yet")
        handle = await self.janus.attach()
        await self.janus.message(
            handle,
            {"request": "join", "room": ROOM_ID, "ptype": "subscriber",
             "streams": [{"feed": self.publisher_id}]},
        )  # fmt: skip
        event = await self.janus.event(handle, lambda e: "jsep" in e)
        offer = event["jsep"]
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], offer["type"]))
        on_track()
        answer = await pc.createAnswer()
        restrict_ice(pc, self.ice_ips, None)
        await pc.setLocalDescription(RTCSessionDescription(edit_answer(answer.sdp), "answer"))
        await self.janus.message(handle, {"request": "start", "room": ROOM_ID}, _jsep(pc))


def janus_version() -> str | None:
    """``janus --version``'s first line, or None."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([JANUS_BIN, "--version"], capture_output=True, text=True, timeout=10)
        for line in out.stdout.splitlines():
            if line.startswith("Janus version"):
                return line.split(":", 1)[1].strip()
    return shutil.which("janus")
