"""A raw Engine.IO/Socket.IO client over one websocket: sends any frame, as a
hostile client would, and reads what comes back. Used by the edge tests,
the fuzz test and scripts/fuzz_signaling.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp

#: what ``RawSocket.call`` returns when the server closed the socket instead
CLOSED = "closed"


class RawSocket:
    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url = url
        self._http = http
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.sid: str | None = None
        self.closed = False
        self.events: list[tuple[str, Any]] = []
        self._acks: dict[int, Any] = {}
        self._next_id = 0
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def open(self, *, connect: bool = True) -> int:
        """Open the websocket (and the socket.io namespace); the HTTP status
        of the upgrade (101, or e.g. 401 when refused)."""
        ws_url = self.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        try:
            self.ws = await self._http.ws_connect(ws_url, autoping=False, max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            self.closed = True
            return exc.status
        first = await self.ws.receive(timeout=5)
        if first.type != aiohttp.WSMsgType.TEXT or not first.data.startswith("0"):
            self.closed = True
            return 0
        self._reader = asyncio.ensure_future(self._read())
        if connect:
            await self.send("40")
            await self._wait(lambda: self.sid is not None or self.closed, 5)
        return 101

    async def send(self, frame: str | bytes) -> None:
        if self.ws is None or self.closed:
            return
        try:
            if isinstance(frame, bytes):
                await self.ws.send_bytes(frame)
            else:
                await self.ws.send_str(frame)
        except (ConnectionError, RuntimeError):
            self.closed = True

    def emit_frame(self, data: Any, ack_id: int | None) -> str:
        return "42" + ("" if ack_id is None else str(ack_id)) + json.dumps(data)

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def call(self, *data: Any, timeout: float = 5) -> Any:
        """Emit ``[event, payload...]`` with an ack; the reply, or CLOSED."""
        ack_id = self.new_id()
        await self.send(self.emit_frame(list(data), ack_id))
        return await self.reply(ack_id, timeout)

    async def call_raw(self, packet_after_id: str, timeout: float = 5) -> Any:
        """Send ``42<id><packet_after_id>`` (anything after the ack id)."""
        ack_id = self.new_id()
        await self.send(f"42{ack_id}{packet_after_id}")
        return await self.reply(ack_id, timeout)

    async def reply(self, ack_id: int, timeout: float = 5) -> Any:
        await self._wait(lambda: ack_id in self._acks or self.closed, timeout)
        if ack_id in self._acks:
            return self._acks.pop(ack_id)
        if self.closed:
            return CLOSED
        raise AssertionError(f"no reply and no close within {timeout}s")

    async def wait_closed(self, timeout: float = 5) -> bool:
        await self._wait(lambda: self.closed, timeout)
        return self.closed

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        self.closed = True
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _wait(self, predicate: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                self._on_frame(msg.data)
                self._changed.set()
        finally:
            self.closed = True
            self._changed.set()

    def _on_frame(self, frame: str) -> None:
        if frame == "2":
            asyncio.ensure_future(self.send("3"))
        elif frame.startswith("40"):
            self.sid = json.loads(frame[2:]).get("sid")
        elif frame.startswith("41") or frame.startswith("1"):
            self.closed = True
        elif frame.startswith("43"):
            body = frame[2:]
            i = 0
            while i < len(body) and body[i].isdigit():
                i += 1
            data = json.loads(body[i:])
            self._acks[int(body[:i])] = data[0] if data else None
        elif frame.startswith("42"):
            body = frame[2:].lstrip("0123456789")
            data = json.loads(body)
            self.events.append((data[0], data[1] if len(data) > 1 else None))
