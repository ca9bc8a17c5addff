"""The servers ``bench_forwarding.py`` measures, each with the bench's
clients for it: Janus (VideoRoom over its HTTP API), Sidecoach (socket.io
signaling, recording off or on) and aiortc's MediaRelay (re-encoding).
Every client gathers ICE candidates on ``BENCH_IP`` only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import benchjanus
import benchlib
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from benchjanus import BENCH_IP
from benchlib import BENCH_SECRET, ROOT, close_all
from forwarding_probes import ForwardedProbe, PublisherProbe, frame_latencies, packet_latencies

from server.media.aiortc_adapter import (
    new_peer_connection,
    prefer_codec,
    restrict_ice,
    tap_receiver,
)

ICE_IPS = (BENCH_IP,)
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def without_abs_send_time(sdp: str) -> str:
    """Subscribers take no abs-send-time (as tests/peers.py's): aiortc's
    receive-side estimator then sends no REMB, to either server."""
    return "".join(line for line in sdp.splitlines(keepends=True) if ABS_SEND_TIME not in line)


# --------------------------------------------------------------- servers ----


class Target:
    """One server under test plus the bench's clients for it."""

    name: str
    latency_unit = "packet"
    server: benchlib.ServerProcess

    async def start(self, workdir: Path) -> None: ...
    async def add_publisher(self, track: MediaStreamTrack, probe: PublisherProbe) -> None: ...
    async def add_subscriber(self, probe: ForwardedProbe) -> None: ...
    async def close(self) -> None: ...

    def latencies(
        self, probe: ForwardedProbe, pub: PublisherProbe
    ) -> tuple[list[float], list[float], int]:
        return packet_latencies(probe, pub)


class JanusTarget(Target):
    name = "janus"

    def __init__(self) -> None:
        self.pcs: list[RTCPeerConnection] = []
        self.janus: benchjanus.JanusSession | None = None

    async def start(self, workdir: Path) -> None:
        self.server = benchjanus.JanusProcess(workdir, BENCH_IP)
        await self.server.start()
        self.janus = benchjanus.JanusSession(self.server.url + "/janus")
        await self.janus.open()
        self.room = benchjanus.VideoRoom(self.janus, ICE_IPS)
        await self.room.create()

    async def add_publisher(self, track: MediaStreamTrack, probe: PublisherProbe) -> None:
        pc = new_peer_connection()
        self.pcs.append(pc)
        transceiver = pc.addTransceiver(track, direction="sendonly")
        prefer_codec(transceiver, "video/VP8", {})
        probe.install(transceiver.sender.transport)
        await self.room.publish(pc)

    async def add_subscriber(self, probe: ForwardedProbe) -> None:
        pc = new_peer_connection()
        self.pcs.append(pc)
        probe.pc = pc

        def tap() -> None:
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "video":
                    tap_receiver(
                        transceiver.receiver, probe.on_packet, benchlib.ignore_sender_report
                    )

        await self.room.subscribe(pc, tap, without_abs_send_time)

    async def close(self) -> None:
        await close_all(pc.close() for pc in self.pcs)
        if self.janus is not None:
            await self.janus.close()


class SidecoachTarget(Target):
    def __init__(self, recording: bool) -> None:
        self.recording = recording
        self.name = "sidecoach-rec" if recording else "sidecoach"
        self.clients: list[Any] = []

    async def start(self, workdir: Path) -> None:
        from server.storage.lessons import open_lessons
        from server.storage.sessions import SessionSettings

        data_dir = workdir / "sidecoach-data"
        data_dir.mkdir()
        store = await open_lessons(data_dir)
        try:
            record = await store.create(
                title="bench", teacher_name="Bench Teacher",
                settings=SessionSettings(recording=self.recording),
            )  # fmt: skip
        finally:
            await store.close()
        self._invite: Callable[[str], str] = lambda role: benchlib.invite(
            BENCH_SECRET, record.id, role
        )
        self.server = benchlib.sidecoach_server(
            data_dir, workdir / "sidecoach.log", BENCH_SECRET, BENCH_IP
        )
        self.url = self.server.url
        await self.server.start()

    async def add_publisher(self, track: MediaStreamTrack, probe: PublisherProbe) -> None:
        from testkit.peers import Participant, wait_for

        teacher = Participant(self.url, self._invite("teacher"), decode=False, ice_ips=ICE_IPS)
        self.clients.append(teacher)
        await teacher.join("bench publisher")
        producer_id = await teacher.publish(track, "camera")
        await wait_for(lambda: teacher.published(producer_id), timeout=20)
        senders = [t.sender for t in teacher.pc.getTransceivers() if t.sender.track is track]
        probe.install(senders[0].transport)

    async def add_subscriber(self, probe: ForwardedProbe) -> None:
        from testkit.peers import Participant

        viewer = Participant(self.url, self._invite("observer"), decode=False, ice_ips=ICE_IPS)
        self.clients.append(viewer)
        probe.pc = viewer.pc
        benchlib.tap_new_tracks(viewer.pc, "video", probe.on_packet)
        await viewer.join(probe.name)

    async def close(self) -> None:
        await close_all(c.close() for c in self.clients)


class BaselineTarget(Target):
    name = "baseline"
    latency_unit = "frame"

    def __init__(self) -> None:
        self.pcs: list[RTCPeerConnection] = []

    async def start(self, workdir: Path) -> None:
        port = benchlib.free_port()
        self.url = f"http://127.0.0.1:{port}"
        cmd = [
            sys.executable, str(ROOT / "scripts" / "bench_baseline_relay.py"),
            "--host", "127.0.0.1", "--port", str(port), "--ice-listen-ips", BENCH_IP,
        ]  # fmt: skip
        log_path = workdir / "baseline.log"
        self.server = benchlib.ServerProcess(self.name, cmd, dict(os.environ), log_path, self.url)
        await self.server.start()

    async def _negotiate(self, pc: RTCPeerConnection, path: str) -> None:
        offer = await pc.createOffer()
        restrict_ice(pc, ICE_IPS, None)
        await pc.setLocalDescription(offer)
        timeout = aiohttp.ClientTimeout(total=20)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(self.url + path, json={"sdp": pc.localDescription.sdp}) as resp,
        ):
            if resp.status != 200:
                raise RuntimeError(f"{path}: HTTP {resp.status}: {await resp.text()}")
            answer = await resp.json()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))

    async def add_publisher(self, track: MediaStreamTrack, probe: PublisherProbe) -> None:
        pc = new_peer_connection()
        self.pcs.append(pc)
        transceiver = pc.addTransceiver(track, direction="sendonly")
        prefer_codec(transceiver, "video/VP8", {})
        probe.install(transceiver.sender.transport)
        await self._negotiate(pc, "/publish")

    async def add_subscriber(self, probe: ForwardedProbe) -> None:
        pc = new_peer_connection()
        self.pcs.append(pc)
        probe.pc = pc
        transceiver = pc.addTransceiver("video", direction="recvonly")
        prefer_codec(transceiver, "video/VP8", {})
        tap_receiver(transceiver.receiver, probe.on_packet, benchlib.ignore_sender_report)
        await self._negotiate(pc, "/subscribe")

    async def close(self) -> None:
        await close_all(pc.close() for pc in self.pcs)

    def latencies(
        self, probe: ForwardedProbe, pub: PublisherProbe
    ) -> tuple[list[float], list[float], int]:
        return frame_latencies(probe, pub)


TARGETS: dict[str, Callable[[], Target]] = {
    "janus": JanusTarget,
    "sidecoach": lambda: SidecoachTarget(recording=False),
    "sidecoach-rec": lambda: SidecoachTarget(recording=True),
    "baseline": BaselineTarget,
}


