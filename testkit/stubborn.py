"""A client that ignores every close: a raw WebSocket on a plain TCP
connection (no library to answer for it) that never sends a close frame,
ignores Engine.IO's CLOSE packet and the server's close frame, answers
pings, and only notices that it is gone when the server closes the TCP
connection itself. Used by the edge tests and scripts/bench_closed_sockets.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct

_OP_TEXT, _OP_CLOSE = 0x1, 0x8


class StubbornSocket:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.status = 0
        #: text frames received, in order
        self.frames: list[str] = []
        #: set when the server closed the TCP connection
        self.cut = asyncio.Event()
        self.close_frames = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self, path: str = "/socket.io/?EIO=4&transport=websocket") -> int:
        """The HTTP status of the upgrade (101, or e.g. 401 when refused)."""
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        key = base64.b64encode(os.urandom(16)).decode()
        self._writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(self._reader.readuntil(b"\r\n\r\n"), 10)
        self.status = int(head.split(b" ", 2)[1])
        if self.status != 101:
            await self.abandon()
            return self.status
        self._task = asyncio.ensure_future(self._read())
        return self.status

    async def send(self, text: str) -> None:
        """One masked text frame (a client's frames are masked)."""
        if self._writer is None or self.cut.is_set():
            return
        payload = text.encode()
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | _OP_TEXT])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with contextlib.suppress(ConnectionError, RuntimeError):
            self._writer.write(head + mask + masked)
            await self._writer.drain()

    async def wait_cut(self, timeout: float) -> bool:
        """Whether the server closed the connection within ``timeout``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.cut.wait(), timeout)
        return self.cut.is_set()

    async def abandon(self) -> None:
        """The test is done with it: close our end (the only close it sends)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()

    async def _read(self) -> None:
        assert self._reader is not None
        try:
            while True:
                b0, b1 = await self._reader.readexactly(2)
                n = b1 & 0x7F
                if n == 126:
                    (n,) = struct.unpack("!H", await self._reader.readexactly(2))
                elif n == 127:
                    (n,) = struct.unpack("!Q", await self._reader.readexactly(8))
                payload = await self._reader.readexactly(n)
                opcode = b0 & 0x0F
                if opcode == _OP_CLOSE:
                    self.close_frames += 1  # ignored
                elif opcode == _OP_TEXT:
                    text = payload.decode()
                    self.frames.append(text)
                    if text == "2":
                        await self.send("3")
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.cut.set()
