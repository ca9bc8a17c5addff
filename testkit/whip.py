"""WHIP publishers and WHEP viewers for tests: an aiortc peer that makes
the one offer and POSTs it, as OBS or a hardware encoder would."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from multidict import CIMultiDictProxy

from server.media.aiortc_adapter import new_peer_connection, restrict_ice
from testkit.peers import LOOPBACK, Received, consume, without_abs_send_time


@dataclass
class HttpReply:
    status: int
    headers: CIMultiDictProxy[str]
    body: str
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


async def request(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: str | bytes | None = None,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> HttpReply:
    """One HTTP request, its reply read whole, and how long it took."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if content_type is not None:
        sent["Content-Type"] = content_type
    start = time.monotonic()
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, data=body, headers=sent) as resp,
    ):
        text = await resp.text()
        return HttpReply(resp.status, resp.headers, text, time.monotonic() - start)


@dataclass
class HttpPeer:
    """A WHIP publisher (``send`` tracks) or a WHEP viewer (``receive``
    kinds): ``start`` offers, POSTs and applies the answer."""

    base_url: str
    endpoint: str  # "/whip/<lesson>" or "/whep/<lesson>"
    token: str
    pc: RTCPeerConnection = field(default_factory=new_peer_connection)
    reply: HttpReply | None = None
    received: list[Received] = field(default_factory=list)

    async def offer(
        self,
        send: Sequence[MediaStreamTrack] = (),
        receive: Sequence[str] = (),
        video_codec: str | None = None,
    ) -> str:
        for track in send:
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            if video_codec is not None and track.kind == "video":
                codecs = RTCRtpSender.getCapabilities("video").codecs
                transceiver.setCodecPreferences(
                    [c for c in codecs if c.mimeType.lower() == video_codec.lower()]
                )
        for kind in receive:
            self.pc.addTransceiver(kind, direction="recvonly")
        offer = await self.pc.createOffer()
        restrict_ice(self.pc, LOOPBACK, None)
        await self.pc.setLocalDescription(offer)
        return str(self.pc.localDescription.sdp)

    async def start(
        self,
        send: Sequence[MediaStreamTrack] = (),
        receive: Sequence[str] = (),
        video_codec: str | None = None,
    ) -> HttpReply:
        """``video_codec``: offer only that one (OBS offers H.264 only)."""
        sdp = await self.offer(send, receive, video_codec)
        if receive:
            sdp = without_abs_send_time(sdp)
        self.reply = await request(
            "POST",
            self.base_url + self.endpoint,
            token=self.token,
            body=sdp,
            content_type="application/sdp",
        )
        if self.reply.status == 201:
            await self.pc.setRemoteDescription(RTCSessionDescription(self.reply.body, "answer"))
            for transceiver in self.pc.getTransceivers():
                if transceiver.direction == "recvonly":
                    rec = Received(transceiver.mid or "", {}, transceiver.receiver.track)
                    rec.task = asyncio.ensure_future(consume(rec))
                    self.received.append(rec)
        return self.reply

    @property
    def resource_url(self) -> str:
        assert self.reply is not None
        return self.base_url + self.reply.headers["Location"]

    def kind(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.track.kind == kind]

    async def close(self) -> None:
        for rec in self.received:
            if rec.task is not None:
                rec.task.cancel()
                await asyncio.gather(rec.task, return_exceptions=True)
        await self.pc.close()
