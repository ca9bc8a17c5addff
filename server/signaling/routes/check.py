"""The pre-lesson check (``/check``): a socket that has joined nothing may
start one check, open test connections to the server (each a server peer
receiving one track; the server offers, the page answers) and read what
arrived. Nothing here reaches a lesson; the limits are ``live/check.py``'s.

While a check runs its socket is held open (not closed as unauthenticated);
it is released when the check ends.
"""

from __future__ import annotations

from typing import Any, Protocol

from server.core.config import Limits
from server.core.errors import Conflict, MessageTooLarge
from server.live.check import Checks, LineCheck
from server.media.policy import Source
from server.signaling import schemas
from server.signaling.dispatcher import Connection, Dispatcher, Reply


class CheckEdge(Protocol):
    """What the check routes need of the socket.io edge."""

    def remote_of_sid(self, sid: str) -> str: ...

    async def emit_to_sid(self, sid: str, event: str, payload: dict[str, Any]) -> None: ...

    def hold(self, sid: str, held: bool) -> None:
        """Keep the socket open while a check runs (or not any more)."""
        ...


def register(dispatcher: Dispatcher, checks: Checks, edge: CheckEdge, limits: Limits) -> None:
    def running(conn: Connection) -> LineCheck:
        if conn.check is None or conn.check.closed:
            raise Conflict("no check is running on this connection: check-start first")
        return conn.check

    async def start(conn: Connection, msg: schemas.Empty) -> Reply:
        if conn.check is not None and not conn.check.closed:
            raise Conflict("a check is running on this connection already")
        if conn.participant is not None:
            raise Conflict("a page in a lesson does not run a check: open /check")
        sid = conn.sid

        async def send(event: str, payload: dict[str, Any]) -> None:
            await edge.emit_to_sid(sid, event, payload)

        check = checks.start(edge.remote_of_sid(sid), send)
        conn.check = check
        edge.hold(sid, True)

        def ended(c: LineCheck) -> None:
            if conn.check is c:
                conn.check = None
                edge.hold(sid, False)

        check.on_close(ended)
        return check.describe()

    async def probe(conn: Connection, msg: schemas.CheckProbe) -> Reply:
        return {"probeId": running(conn).probe(Source(msg.source))}

    async def answer(conn: Connection, msg: schemas.CheckAnswer) -> Reply:
        if len(msg.sdp.encode()) > limits.max_sdp_bytes:
            raise MessageTooLarge(f"SDP of more than {limits.max_sdp_bytes} bytes")
        await running(conn).get(msg.probeId).peer.handle_answer(msg.negotiationId, msg.sdp)
        return {}

    async def stats(conn: Connection, msg: schemas.CheckStats) -> Reply:
        return running(conn).get(msg.probeId).stats()

    async def stop(conn: Connection, msg: schemas.Empty) -> Reply:
        if conn.check is not None:
            await conn.check.close()
        return {}

    dispatcher.add("check-start", schemas.Empty, start, needs_join=False)
    dispatcher.add("check-probe", schemas.CheckProbe, probe, needs_join=False)
    dispatcher.add("check-answer", schemas.CheckAnswer, answer, needs_join=False)
    dispatcher.add("check-stats", schemas.CheckStats, stats, needs_join=False)
    dispatcher.add("check-stop", schemas.Empty, stop, needs_join=False)
