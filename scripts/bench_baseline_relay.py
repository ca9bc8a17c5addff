"""Baseline server for scripts/bench_forwarding.py: the textbook aiortc relay.

One publisher, any number of subscribers, relayed with
``aiortc.contrib.media.MediaRelay``: the server *decodes* the publisher's
video once and *re-encodes* it for every subscriber (one VP8 encoder per
subscriber). This is what most aiortc examples do, and what Sidecoach's
packet forwarding is compared against.

HTTP (non-trickle: aiortc gathers every candidate before answering):

* ``POST /publish``   body ``{"sdp": offer}`` -> ``{"sdp": answer}``; the offer
  must send one video track. A new publish replaces the previous source for
  later subscribers.
* ``POST /subscribe`` body ``{"sdp": offer}`` -> ``{"sdp": answer}``; the offer
  must receive one video track; waits (up to 10 s) for a publisher.
* ``GET /healthz``    -> ``{"ok": true, "peers": n}``

ICE is restricted to ``--ice-listen-ips`` (default 127.0.0.1) and no STUN or
TURN server is ever used: ``RTCConfiguration(iceServers=[])``.

Run: ``.venv/bin/python scripts/bench_baseline_relay.py --port 8099``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole, MediaRelay
from aiortc.mediastreams import MediaStreamTrack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.media.aiortc_adapter import restrict_ice  # noqa: E402

logger = logging.getLogger("baseline")

MAX_BODY_BYTES = 256 * 1024
SUBSCRIBE_WAIT_S = 10.0


class RelayServer:
    def __init__(self, listen_ips: tuple[str, ...]) -> None:
        self.listen_ips = listen_ips
        self.relay = MediaRelay()
        self.source: MediaStreamTrack | None = None
        self.source_ready = asyncio.Event()
        self.pcs: set[RTCPeerConnection] = set()
        self._drain: MediaBlackhole | None = None

    def _new_pc(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pcs.add(pc)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self.pcs.discard(pc)
                await pc.close()

        return pc

    async def _answer(self, pc: RTCPeerConnection, offer_sdp: str) -> str:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        answer = await pc.createAnswer()
        restrict_ice(pc, self.listen_ips, None)
        await pc.setLocalDescription(answer)
        return str(pc.localDescription.sdp)

    async def publish(self, request: web.Request) -> web.Response:
        body = await _offer(request)
        pc = self._new_pc()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind != "video":
                return
            self.source = track
            # Keep the relay reading the source from the start, so frames
            # decoded before the first subscriber do not pile up in aiortc's
            # (unbounded) track queue.
            if self._drain is not None:
                asyncio.ensure_future(self._drain.stop())
            self._drain = MediaBlackhole()
            self._drain.addTrack(self.relay.subscribe(track, buffered=False))
            asyncio.ensure_future(self._drain.start())
            self.source_ready.set()

        return web.json_response({"sdp": await self._answer(pc, body)})

    async def subscribe(self, request: web.Request) -> web.Response:
        body = await _offer(request)
        try:
            await asyncio.wait_for(self.source_ready.wait(), SUBSCRIBE_WAIT_S)
        except TimeoutError:
            raise web.HTTPServiceUnavailable(text="no publisher") from None
        assert self.source is not None
        pc = self._new_pc()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="offer"))
        # buffered=False: a subscriber whose encoder falls behind skips to the
        # newest frame instead of queueing (unboundedly) behind old ones.
        pc.addTrack(self.relay.subscribe(self.source, buffered=False))
        answer = await pc.createAnswer()
        restrict_ice(pc, self.listen_ips, None)
        await pc.setLocalDescription(answer)
        return web.json_response({"sdp": pc.localDescription.sdp})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "peers": len(self.pcs)})

    async def close(self, app: web.Application) -> None:
        if self._drain is not None:
            await self._drain.stop()
        await asyncio.gather(*(pc.close() for pc in list(self.pcs)), return_exceptions=True)
        self.pcs.clear()


async def _offer(request: web.Request) -> str:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_BODY_BYTES, actual_size=request.content_length
        )
    try:
        data: Any = await request.json()
        sdp = data["sdp"]
    except (ValueError, KeyError, TypeError):
        raise web.HTTPBadRequest(text='expected JSON {"sdp": "..."}') from None
    if not isinstance(sdp, str) or len(sdp) > MAX_BODY_BYTES:
        raise web.HTTPBadRequest(text="bad sdp")
    return sdp


def make_app(listen_ips: tuple[str, ...]) -> web.Application:
    server = RelayServer(listen_ips)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/publish", server.publish)
    app.router.add_post("/subscribe", server.subscribe)
    app.router.add_get("/healthz", server.healthz)
    app.on_shutdown.append(server.close)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--ice-listen-ips", default="127.0.0.1")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    listen_ips = tuple(ip.strip() for ip in args.ice_listen_ips.split(",") if ip.strip())
    web.run_app(
        make_app(listen_ips), host=args.host, port=args.port, print=None, handle_signals=True
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
