"""The transport edge: python-socketio and python-engineio, held to our rules.

Every use of their private names lives here, and only here (the versions
are pinned and checked at import; tests/test_transport.py covers the seams).

* **Engine.IO frames** are checked before Engine.IO decodes them (its
  decoder raises, parses JSON of any depth and logs tracebacks on bad
  input): only the packets a client may send pass. A bad frame closes the
  socket. Binary frames are refused outright: no Sidecoach message needs
  one, and python-socketio would buffer every attachment a packet announces.
* **Socket.IO packets** are decoded here, not by the library's dispatcher:
  a packet that does not decode (invalid JSON, deep nesting, huge integers,
  unknown types, binary events, a second CONNECT) closes the socket; an
  EVENT goes to ``EdgeHooks.dispatch`` with its raw payload, whatever its
  shape, and the reply is sent as the acknowledgement. Client events never
  reach the library's ``connect``/``disconnect`` handlers: those fire only
  from the transport.
* **Admission**: every Engine.IO connection asks ``EdgeHooks.admit`` first,
  and ``EdgeHooks.gone`` hears when it ends: when its transport is gone,
  not merely when Engine.IO calls it closed.
* **A closed socket is gone at once.** Engine.IO's own close only queues a
  CLOSE packet: a websocket stays open (and is still read) until its client
  closes it or a ping times out, ~45 s later, and ``disconnect()`` waits for
  a long-poll that may never come. Here, whenever a socket closes (the
  server closed it, its client left, a ping timed out), its websocket gets
  the CLOSE packet, a close frame and, after ``close_grace_s``, its TCP
  connection closed; a long-polling socket is forgotten at once (its next
  request gets 400). Whatever a closed socket's transport still carries is
  dropped unread. Closing never waits on a client.
* **Handed-over sockets** (several nodes, ``server/cluster``): a ``join`` for
  a session another node hosts hands the client's socket over to that node
  (``EdgeHooks.route`` returns a ``Pipe``). From then on this node passes
  every socket.io packet of that client, unread, through the pipe, and
  writes what comes back to the client. The host node runs the socket as a
  *virtual* one: its socket.io server (rooms, acks, ``call``) treats it like
  a local client, but its packets travel through the pipe instead of an
  Engine.IO socket (``open_virtual``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import secrets
from typing import Any, Protocol
from urllib.parse import parse_qs

import socketio
from aiohttp import web
from socketio import packet as sio_packet

from server.core.tasks import TaskOwner

logger = logging.getLogger(__name__)

PINNED = {"python-socketio": "5.18.1", "python-engineio": "4.15.1"}
for _dist, _version in PINNED.items():  # pragma: no cover - guards upgrades
    if importlib.metadata.version(_dist) != _version:
        raise ImportError(
            f"server.signaling.transport is written against {_dist} {_version}, found "
            f"{importlib.metadata.version(_dist)}: re-check the private APIs it uses"
        )

NAMESPACE = "/"
#: Engine.IO packets in one long-polling POST (Engine.IO's own limit)
MAX_POLLING_PACKETS = 16
#: the first character of a socket.io packet: its type
_DIGITS = frozenset("0123456")


class EdgeHooks(Protocol):
    """What the transport asks of the signaling layer."""

    def admit(self, eio_sid: str, remote: str) -> str | None:
        """A new Engine.IO connection from ``remote``: None admits it, a
        reason refuses it."""
        ...

    def gone(self, eio_sid: str) -> None:
        """The Engine.IO connection ended (after any socket.io disconnect)
        and its transport is gone (no TCP connection left for it)."""
        ...

    async def dispatch(self, sid: str, data: Any, size: int) -> Any:
        """One EVENT packet's decoded payload (any JSON value: it should be
        ``[event, payload]``) of ``size`` characters; returns the reply."""
        ...

    def malformed(self, sid: str, reason: str, detail: str = "") -> None:
        """A frame or packet that cannot be handled; the socket is closed."""
        ...

    async def route(self, sid: str, eio_sid: str, remote: str, data: Any) -> Any:
        """A ``join`` EVENT (``data``) on a socket of this node: None
        dispatches it here, a ``Pipe`` hands the socket over to another node
        (this packet and every later one go through it), a dict is the reply."""
        ...


class Pipe(Protocol):
    """One handed-over socket's way to the other node (or back): ``send``
    queues one encoded socket.io packet, ``close`` says the socket is gone.
    Neither blocks."""

    def send(self, data: str) -> None: ...

    def close(self) -> None: ...


def frame_problem(frame: object, *, websocket: bool) -> str | None:
    """Why an Engine.IO frame from a client is refused, or None.

    Allowed: CLOSE ``1``, PONG ``3``, MESSAGE ``4`` carrying a socket.io
    packet (its first character a packet type digit, so Engine.IO never
    parses it as JSON) and, on a websocket upgrade, ``2probe`` and ``5``.
    """
    if isinstance(frame, bytes | bytearray):
        return "binary frame"
    if not isinstance(frame, str) or not frame:
        return "empty frame"
    kind, rest = frame[0], frame[1:]
    if kind == "4":
        return None if rest[:1] in _DIGITS and rest else "not a socket.io packet"
    if kind in "13" and not rest:
        return None
    if websocket and (frame == "2probe" or frame == "5"):
        return None
    return "unexpected engine.io packet"


def _guarded_websocket(base: Any, edge: EdgeServer) -> Any:
    """Engine.IO's websocket wrapper for aiohttp, refusing bad frames (a
    refused frame raises OSError, which Engine.IO takes as a closed socket),
    telling the edge while it is open, and closing for good within the
    edge's grace (aiohttp's own close waits 10 s for the client's frame)."""

    class GuardedWebSocket(base):  # type: ignore[misc]
        async def __call__(self, environ: dict[str, Any]) -> Any:
            self.request = environ["aiohttp.request"]
            self._sock = web.WebSocketResponse(
                max_msg_size=self.server.max_http_buffer_size, timeout=edge.close_grace_s
            )
            await self._sock.prepare(self.request)
            self.environ = environ
            owner = self.handler.__self__  # the AsyncSocket this websocket carries
            edge.transport_opened(owner, self)
            try:
                await self.handler(self)
            finally:
                edge.transport_gone(owner.sid, self)
            return self._sock

        async def wait(self) -> Any:
            data = await super().wait()
            problem = frame_problem(data, websocket=True)
            if problem is not None:
                owner = getattr(self.handler, "__self__", None)  # the AsyncSocket
                edge.refuse_frame(str(getattr(owner, "sid", "?")), problem)
                raise OSError(problem)
            return data

        async def cut(self) -> None:
            """Close frame now; the TCP connection within the grace."""
            with contextlib.suppress(Exception):  # a broken or half-closed socket
                await asyncio.wait_for(self._sock.close(), edge.close_grace_s)
            transport = self.request.transport
            if transport is not None and not transport.is_closing():
                transport.abort()

    return GuardedWebSocket


class _Body:
    """A long-polling request body already read (and checked)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, n: int = -1) -> bytes:
        data, self._data = self._data, b""
        return data


class EdgeServer(socketio.AsyncServer):  # type: ignore[misc]
    """``socketio.AsyncServer`` that owns the transport edge (see module doc)."""

    def __init__(
        self,
        hooks: EdgeHooks,
        *,
        sid_prefix: str = "",
        close_grace_s: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._hooks = hooks
        self._events = TaskOwner("signaling events")
        #: a closed socket's client gets this long to close its websocket
        self.close_grace_s = close_grace_s
        #: open websockets: Engine.IO sid -> (its AsyncSocket, the websocket)
        self._transports: dict[str, tuple[Any, Any]] = {}
        #: closed sockets whose websocket is not gone yet
        self._closing: set[str] = set()
        self._cuts = TaskOwner("closing transports")
        #: handed over to another node: our Engine.IO sid -> pipe to it
        self._bound: dict[str, Pipe] = {}
        #: hosted here for another node: virtual Engine.IO sid -> pipe back
        self._virtual: dict[str, Pipe] = {}
        #: virtual sockets whose socket.io CONNECT reply is not sent (the
        #: client is already connected, to the other node)
        self._quiet_connect: set[str] = set()
        self.sid_prefix = sid_prefix
        eio: Any = self.eio
        if sid_prefix:
            # every Engine.IO session id names its node, so any node can
            # forward a long-polling request to the node holding the socket
            eio.generate_id = lambda: f"{sid_prefix}.{secrets.token_urlsafe(15)}"
        drivers = dict(eio._async)  # a copy: the driver's dict is module-wide
        drivers["websocket"] = _guarded_websocket(drivers["websocket"], self)
        translate = drivers["translate_request"]

        async def translate_request(request: Any) -> Any:
            environ = translate(request)
            await self._check_polling_body(request, environ)
            return environ

        drivers["translate_request"] = translate_request
        eio._async = drivers

    # -- what the signaling layer uses ----------------------------------

    def eio_sid(self, sid: str) -> str | None:
        """The Engine.IO connection of socket.io client ``sid``."""
        found = self.manager.eio_sid_from_sid(sid, NAMESPACE)
        return str(found) if found else None

    def sid(self, eio_sid: str) -> str | None:
        found = self.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        return str(found) if found else None

    async def close_connection(self, eio_sid: str) -> None:
        """Close an Engine.IO connection (with its socket.io client); its
        transport goes too (see the module doc). Never waits on the client."""
        pipe = self._virtual.get(eio_sid)
        if pipe is not None:
            pipe.close()
            await self.virtual_closed(eio_sid)
            return
        sock = self.eio.sockets.get(eio_sid)
        if sock is None:
            return
        # not Engine.IO's disconnect(): it waits until the client has read
        # the CLOSE packet, which a gone long-poller never does
        await sock.close(wait=False, reason=self.reason.SERVER_DISCONNECT)
        self.eio.sockets.pop(eio_sid, None)

    async def close_all(self) -> None:
        """Close every connection: this node's sockets and the virtual ones
        it hosts for other nodes (their clients reconnect); returns once
        their transports are gone (at most the grace, and a little)."""
        for eio_sid in list(self._virtual):
            await self.close_connection(eio_sid)
        for eio_sid in list(self.eio.sockets):
            await self.close_connection(eio_sid)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.close_grace_s + 1.0
        while self._transports and loop.time() < deadline:
            await asyncio.sleep(0.02)

    @property
    def virtual_count(self) -> int:
        return len(self._virtual)

    @property
    def bound_count(self) -> int:
        return len(self._bound)

    @property
    def transport_count(self) -> int:
        """Websockets open now (a closed socket's until its grace ends)."""
        return len(self._transports)

    async def aclose(self) -> None:
        await self._events.aclose()
        await self._cuts.aclose()

    # -- transports (websockets) ----------------------------------------

    def transport_opened(self, sock: Any, ws: Any) -> None:
        self._transports[str(sock.sid)] = (sock, ws)
        if sock.closed or sock.closing:  # closed while its websocket was being set up
            self._cut(str(sock.sid))

    def transport_gone(self, eio_sid: str, ws: Any) -> None:
        held = self._transports.get(eio_sid)
        if held is not None and held[1] is ws:
            del self._transports[eio_sid]
        if eio_sid in self._closing and eio_sid not in self._transports:
            self._closing.discard(eio_sid)
            self._hooks.gone(eio_sid)

    def _cut(self, eio_sid: str) -> None:
        """The socket closed: its websocket goes once the CLOSE packet is out."""
        if eio_sid in self._closing:
            return
        self._closing.add(eio_sid)
        sock, ws = self._transports[eio_sid]
        self._cuts.spawn(self._cut_after_close(sock, ws), name="close transport")

    async def _cut_after_close(self, sock: Any, ws: Any) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.close_grace_s
        # Engine.IO queues the CLOSE packet right after the disconnect handlers
        while not (sock.closed and sock.queue.empty()) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        sock.queue.put_nowait(None)  # its writer stops after what it sent
        await ws.cut()

    # -- handed-over sockets: this node is the edge -----------------------

    async def to_client(self, eio_sid: str, data: str) -> None:
        """A packet from the host node for a handed-over socket."""
        if eio_sid not in self._bound:
            return
        await self.eio.send(eio_sid, data)
        if data[:1] == str(sio_packet.DISCONNECT):  # the host ended the socket.io session
            await self.host_closed(eio_sid)

    async def host_closed(self, eio_sid: str) -> None:
        """The host node dropped a handed-over socket (or the link to it
        broke): close the client's connection; it reconnects and is placed
        again."""
        pipe = self._bound.pop(eio_sid, None)
        if pipe is not None:
            pipe.close()  # the host forgets it too (if it has not already)
            await self.close_connection(eio_sid)

    def bound_to(self, eio_sid: str) -> Pipe | None:
        return self._bound.get(eio_sid)

    # -- handed-over sockets: this node is the host ----------------------

    async def open_virtual(self, pipe: Pipe, remote: str) -> str | None:
        """Host a socket another node handed over; returns its virtual
        Engine.IO sid, or None if admission refused it (the pipe is closed)."""
        eio_sid = self.eio.generate_id()
        self._virtual[eio_sid] = pipe
        refusal = await self._handle_eio_connect(eio_sid, {"sidecoach.remote": remote})
        if refusal is False:
            self._virtual.pop(eio_sid, None)
            pipe.close()
            return None
        self._quiet_connect.add(eio_sid)
        await self._handle_packet(eio_sid, str(sio_packet.CONNECT))
        self._quiet_connect.discard(eio_sid)
        return str(eio_sid)

    async def from_edge(self, eio_sid: str, data: str) -> None:
        """A packet of a virtual socket, from its edge node."""
        if eio_sid in self._virtual:
            await self._handle_eio_message(eio_sid, data)

    async def virtual_closed(self, eio_sid: str) -> None:
        """The edge node's client went away (or its link broke)."""
        if self._virtual.pop(eio_sid, None) is not None:
            await self._handle_eio_disconnect(eio_sid, self.reason.TRANSPORT_CLOSE)

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        pipe = self._virtual.get(eio_sid)
        if pipe is None:
            await super()._send_packet(eio_sid, pkt)
        elif not (eio_sid in self._quiet_connect and pkt.packet_type == sio_packet.CONNECT):
            pipe.send(pkt.encode())

    async def _send_eio_packet(self, eio_sid: str, eio_pkt: Any) -> None:
        pipe = self._virtual.get(eio_sid)
        if pipe is None:
            await super()._send_eio_packet(eio_sid, eio_pkt)
        else:
            pipe.send(eio_pkt.data)

    # -- Engine.IO ----------------------------------------------------------

    def refuse_frame(self, eio_sid: str, reason: str) -> None:
        """A frame refused before Engine.IO decodes it (the socket closes)."""
        if self._open(eio_sid):  # what a closed socket still sends is dropped unread
            self._hooks.malformed(self.sid(eio_sid) or eio_sid, reason)

    def _open(self, eio_sid: str) -> bool:
        """Whether this Engine.IO socket (or virtual socket) is open."""
        if eio_sid in self._virtual:
            return True
        sock = self.eio.sockets.get(eio_sid)
        return sock is not None and not (sock.closed or sock.closing)

    async def _check_polling_body(self, request: Any, environ: dict[str, Any]) -> None:
        """Read and check a long-polling POST body before Engine.IO decodes
        it; a bad one is replaced by a CLOSE packet (Engine.IO then closes
        the socket without a traceback)."""
        if environ.get("REQUEST_METHOD") != "POST":
            return
        eio_sid = (parse_qs(environ.get("QUERY_STRING", "")).get("sid") or [""])[0]
        limit = int(self.eio.max_http_buffer_size)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = limit + 1
        if length > limit:
            return  # Engine.IO refuses it (400) and closes the socket
        try:
            body = await request.content.readexactly(length)
            frames = body.decode("utf-8").split("\x1e") if body else []
        except (UnicodeDecodeError, EOFError, OSError, ValueError):
            frames = [b""]
        if len(frames) > MAX_POLLING_PACKETS:
            problem: str | None = "too many packets"
        else:
            problem = next(
                (p for f in frames if (p := frame_problem(f, websocket=False)) is not None), None
            )
        if problem is not None:
            self.refuse_frame(eio_sid, problem)
            body = b"1"
        environ["wsgi.input"] = _Body(body)
        environ["CONTENT_LENGTH"] = str(len(body))

    def remote_of(self, eio_sid: str) -> str:
        environ = self.environ.get(eio_sid) or {}
        if "sidecoach.remote" in environ:
            return str(environ["sidecoach.remote"])
        request = environ.get("aiohttp.request")
        return str(getattr(request, "remote", None) or "unknown")

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        if "sidecoach.remote" in environ:
            remote = str(environ["sidecoach.remote"])
        else:
            request = environ.get("aiohttp.request")
            remote = str(getattr(request, "remote", None) or "unknown")
        refusal = self._hooks.admit(eio_sid, remote)
        if refusal is not None:
            return False  # Engine.IO answers 401 and drops the connection
        await super()._handle_eio_connect(eio_sid, environ)
        return None

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        """Every close of an Engine.IO socket, whoever closed it."""
        pipe = self._bound.pop(eio_sid, None)
        if pipe is not None:
            pipe.close()
        try:
            await super()._handle_eio_disconnect(eio_sid, reason)
        finally:
            self._binary_packet.pop(eio_sid, None)
            if eio_sid in self._transports:
                self._cut(eio_sid)  # gone when its websocket is
            else:
                sock = self.eio.sockets.get(eio_sid)
                if sock is not None:
                    # a long-poll waiting on it returns now (after the CLOSE
                    # packet Engine.IO queues next, if any), not in 45 s
                    asyncio.get_running_loop().call_soon(sock.queue.put_nowait, None)
                self._hooks.gone(eio_sid)

    # -- Socket.IO ------------------------------------------------------

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        """Decode one socket.io packet; never raises. A packet that fails
        for a reason of ours is logged once: its socket is closed, and what
        a closed socket still sends is dropped unread."""
        if not self._open(eio_sid):
            return
        pipe = self._bound.get(eio_sid)
        if pipe is not None:  # handed over: the host node reads it
            if isinstance(data, str):
                pipe.send(data)
            else:
                await self._close(eio_sid, eio_sid, "binary frame")
            return
        try:
            await self._handle_packet(eio_sid, data)
        except Exception as exc:  # a bug here must not become a traceback per packet
            self._hooks.malformed(self.sid(eio_sid) or eio_sid, "unhandled packet", repr(exc))
            await self.close_connection(eio_sid)

    async def _handle_packet(self, eio_sid: str, data: Any) -> None:
        sid = self.sid(eio_sid)
        who = sid or eio_sid
        if not isinstance(data, str):
            return await self._close(eio_sid, who, "binary frame")
        try:
            pkt = self.packet_class(encoded_packet=data)
        except (ValueError, TypeError, RecursionError, IndexError) as exc:
            return await self._close(eio_sid, who, "undecodable packet", repr(exc)[:120])
        namespace = pkt.namespace or NAMESPACE
        kind = pkt.packet_type
        if pkt.attachment_count or kind in (sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK):
            return await self._close(eio_sid, who, "binary packet")
        if kind == sio_packet.CONNECT:
            if namespace != NAMESPACE:
                return await self._close(eio_sid, who, "unknown namespace")
            if sid is not None:
                return await self._close(eio_sid, who, "second connect")
            return await self._handle_connect(eio_sid, namespace, pkt.data)  # type: ignore[no-any-return]
        if sid is None or namespace != NAMESPACE:
            return await self._close(eio_sid, who, "packet before connect")
        if kind == sio_packet.DISCONNECT:
            return await self._handle_disconnect(eio_sid, namespace, self.reason.CLIENT_DISCONNECT)  # type: ignore[no-any-return]
        if kind == sio_packet.ACK:
            if not isinstance(pkt.data, list):
                return await self._close(eio_sid, who, "ack is not a list")
            return await self._handle_ack(eio_sid, namespace, pkt.id, pkt.data)  # type: ignore[no-any-return]
        if kind != sio_packet.EVENT:
            return await self._close(eio_sid, who, "unexpected packet type")
        self._events.spawn(self._event(eio_sid, sid, pkt.id, pkt.data, data), name="event")

    async def _event(self, eio_sid: str, sid: str, ack_id: int | None, data: Any, raw: str) -> None:
        if eio_sid not in self._virtual and isinstance(data, list) and data and data[0] == "join":
            routed = await self._hooks.route(sid, eio_sid, self.remote_of(eio_sid), data)
            if isinstance(routed, dict):  # a refusal
                await self._ack(eio_sid, ack_id, routed)
                return
            if routed is not None:
                if eio_sid in self.eio.sockets:
                    self._bound[eio_sid] = routed
                    routed.send(raw)
                else:  # the client left meanwhile
                    routed.close()
                return
        await self._ack(eio_sid, ack_id, await self._hooks.dispatch(sid, data, len(raw)))

    async def _ack(self, eio_sid: str, ack_id: int | None, reply: Any) -> None:
        if ack_id is not None:
            await self._send_packet(
                eio_sid,
                self.packet_class(sio_packet.ACK, namespace=NAMESPACE, id=ack_id, data=[reply]),
            )

    async def _close(self, eio_sid: str, who: str, reason: str, detail: str = "") -> None:
        self._hooks.malformed(who, reason, detail)
        await self.close_connection(eio_sid)
