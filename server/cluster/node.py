"""This node in a deployment of several: its heartbeat, where sessions go,
and what happens when a node or Redis goes away.

* **Placement** (``place``): a session hosted here stays here; else the
  directory's holder if it is alive; else one atomic claim in Redis
  (``directory.py``) puts it on the least loaded node that is not draining
  (fewest sessions, counting those claimed a moment ago; nodes over
  ``NODE_BUSY_CPU_PCT`` only if all are; this node on a tie). A ``join``
  for a session hosted elsewhere hands the client's socket over to that
  node (``route_join``; the media goes straight to the host, whose ICE
  address is in its offers).
* **Heartbeat** (every ``NODE_HEARTBEAT_INTERVAL_S``): this node's load,
  live sessions and which nodes it reaches, and the directory entries of
  its sessions, refreshed. Only heartbeats and entries signed with the
  deployment's secret are believed (``signing.py``).
* **A node gone**: this node keeps a link to every other node; when one
  breaks and the node does not answer again at once, it is dead here and
  now (not ``NODE_TTL_S`` later): its entries are free to claim, the
  sockets relayed to it close (their pages rejoin and are placed again),
  and a node sharing its data directory finalizes the recordings it left
  unfinished. A node that only lost its link comes back with its next
  heartbeat. A node whose heartbeat stops for ``NODE_TTL_S`` is dead too.
* **Redis down**: this node keeps serving its sessions (and joins to them);
  a join for a session it does not host goes to the node it last knew
  hosts it (over the node link, which needs no Redis), else the session
  opens here. When Redis is back the directory catches up: a session that
  was opened on two nodes meanwhile stays on the one the directory names,
  the other releases it (its pages rejoin there).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import math
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from server.cluster.directory import Directory, Entry, NodeInfo
from server.cluster.errors import NodeUnavailable, RedisUnavailable
from server.cluster.links import LINK_PATH, LinkHub
from server.cluster.redis_conn import RedisConn
from server.cluster.relay import Relay
from server.cluster.series import RecordingSeries
from server.core.config import Config, node_id_of
from server.core.errors import SidecoachError
from server.core.tasks import TaskOwner
from server.core.tokens import verify_invite
from server.live.manager import ServerDraining, SessionManager
from server.live.session import Session
from server.recording.catalog import RecordingCatalog
from server.recording.recovery import take_over_node
from server.signaling.transport import EdgeServer

logger = logging.getLogger(__name__)


def _running(pid: int) -> bool:
    """Whether process ``pid`` (on this box) runs: exists and is no zombie
    (a node killed a moment ago may not be reaped yet)."""
    try:
        os.kill(pid, 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat[stat.rindex(")") + 2] in "ZX":
            return False
    return pid > 0


#: a node's CPU in its heartbeat is smoothed over about this long
CPU_SMOOTHING_S = 10.0


def sid_tag(node_id: str) -> str:
    """A short, stable prefix for this node's Engine.IO session ids."""
    return "n" + hashlib.sha256(node_id.encode()).hexdigest()[:7]


class ClusterNode:
    """This node: placement, heartbeats, faults (see the module doc)."""

    def __init__(
        self,
        config: Config,
        sio: EdgeServer,
        catalog: RecordingCatalog,
        redis: RedisConn | None = None,
    ) -> None:
        assert config.redis_url
        self.config = config
        self.node_id = node_id_of(config)
        self.tag = sid_tag(self.node_id)
        self.url = config.node_url
        self.sio = sio
        self.catalog = catalog
        self.manager: SessionManager | None = None  # set once the app made it
        limits = config.limits
        #: the store's connection when sessions are in Redis too
        self.redis = redis or RedisConn(config.redis_url, config.secret, tls_ca=config.redis_tls_ca)
        self._owns_redis = redis is None
        self.directory = Directory(self.redis, limits.node_ttl_s)
        self.series = RecordingSeries(self.redis, self.node_id)
        self.relay = Relay(sio, limits.node_request_timeout_s)
        self.hub = LinkHub(
            self.node_id,
            config.secret,
            self.relay,
            self._url_of,
            max_queue=limits.node_link_queue_frames,
            connect_timeout_s=limits.node_connect_timeout_s,
            on_lost=self._lost,
        )
        self.relay.hub = self.hub
        self.relay.handlers["end-session"] = self._end_requested
        #: live nodes as of the last heartbeat (this one included)
        self.nodes: dict[str, NodeInfo] = {}
        #: session -> node hosting it, as of the last heartbeat
        self.where: dict[str, str] = {}
        #: nodes taken for dead before their heartbeat expired -> their last
        #: heartbeat seen (a newer one brings them back)
        self._dead: dict[str, NodeInfo] = {}
        #: nodes whose heartbeat is not signed with this deployment's secret
        self.unverified: list[str] = []
        self.nodes_lost = 0
        self.draining = False
        self.started_at = time.time()
        self._cpu_mark = (time.monotonic(), time.process_time())
        self._cpu_pct = 0.0
        self._tasks = TaskOwner("cluster")
        self.heartbeats = 0
        self._beat_failed = False
        #: until then a node missing from the heartbeats is not taken for dead
        self._settle_until = 0.0

    # -- app wiring ------------------------------------------------------------

    def setup_routes(self, app: web.Application) -> None:
        app.router.add_get(LINK_PATH, self.hub.handle)

    async def start(self, url: str) -> None:
        """Announce this node (its first heartbeat) and keep beating."""
        self.url = self.config.node_url or url
        with contextlib.suppress(RedisUnavailable):  # logged; the loop keeps trying
            await self._beat()
        self._tasks.spawn(self._beat_loop(), name="heartbeat")
        logger.info(
            "node %s (%s) joined the deployment on %s (%s): %d node(s) live",
            self.node_id,
            self.url,
            self.redis.name,
            ", ".join(self.redis.security) or "NOT secured: no TLS, no password",
            len(self.nodes),
        )

    def begin_drain(self) -> None:
        """No new sessions here: the next heartbeat says so, placement skips us."""
        self.draining = True

    async def stop(self) -> None:
        """Leave the deployment: release our sessions' entries (other nodes
        take them at once) and our heartbeat, close the links."""
        await self._tasks.aclose()
        hosted = list(self.manager.sessions) if self.manager is not None else []
        try:
            await self.directory.release(self.node_id, [*hosted, *self.where_mine()])
            await self.directory.leave(self.node_id)
        except RedisUnavailable:
            pass
        await self.hub.close()
        await self.relay.close()
        if self._owns_redis:
            await self.redis.close()

    def where_mine(self) -> list[str]:
        return [s for s, n in self.where.items() if n == self.node_id]

    def _url_of(self, node_id: str) -> str | None:
        info = self.nodes.get(node_id) or self._dead.get(node_id)
        return info.url if info is not None else None

    def other_urls(self) -> list[str]:
        """The URLs of the other live nodes."""
        return [n.url for n in self.nodes.values() if n.id != self.node_id]

    def url_of_tag(self, tag: str) -> str | None:
        """The URL of the live node whose Engine.IO sessions have this tag."""
        return next((n.url for n in self.nodes.values() if n.tag == tag), None)

    # -- placement --------------------------------------------------------------

    def _hosted_here(self, session_id: str) -> bool:
        manager = self.manager
        session = manager.sessions.get(session_id) if manager is not None else None
        return session is not None and not session.closed

    def _candidates(self) -> list[NodeInfo]:
        """The nodes a new session may go to, this one first: live, taking
        new sessions, not busy (CPU under ``NODE_BUSY_CPU_PCT``, unless all
        are). This node's sessions are counted as of now."""
        mine = self._sessions_here()
        me = self.nodes.get(self.node_id)
        me = dataclasses.replace(me, sessions=mine) if me is not None else None
        others = [n for n in self.nodes.values() if n.id != self.node_id]
        nodes = [*([me] if me is not None else []), *others]
        if me is None and not self.draining:  # before our first heartbeat got through
            nodes.insert(0, dataclasses.replace(self._info(), sessions=mine))
        candidates = [n for n in nodes if not n.draining]
        if not candidates:
            raise ServerDraining("every server is restarting; trying again shortly")
        busy = self.config.limits.node_busy_cpu_pct
        return [n for n in candidates if n.cpu_pct < busy] or candidates

    def _sessions_here(self) -> dict[str, dict[str, Any]]:
        manager = self.manager
        if manager is None:
            return {}
        return {s.id: {} for s in manager.sessions.values() if not s.closed}

    async def _alive(self, node_id: str) -> bool:
        """Whether ``node_id`` is a live node of this deployment: known from
        the heartbeats, or (a node that started a moment ago) with a
        signed heartbeat in Redis now."""
        if node_id in self.nodes:
            return True
        if node_id in self._dead:
            return False
        nodes, _ = await self.directory.live_nodes()
        found = next((n for n in nodes if n.id == node_id), None)
        if found is not None:
            self.nodes[node_id] = found
        return found is not None

    async def place(self, session_id: str) -> str:
        """The node that hosts (or is to host) this session."""
        if self._hosted_here(session_id):
            return self.node_id
        if self.redis.up:
            try:
                entry = await self.directory.holder(session_id)
                alive = entry is not None and entry.holder is not None
                if alive and entry is not None and await self._alive(str(entry.holder)):
                    return str(entry.holder)
                hosting = self.where.get(session_id)  # a live node's heartbeat says so
                if hosting is not None and hosting in self.nodes:
                    return hosting  # its entry is not ours: the host writes it back
                return await self._claim(session_id, entry)
            except RedisUnavailable:
                pass
        # Redis is down: the node we last knew hosts it, else here
        known = self.where.get(session_id)
        if known is not None and known in self.nodes and known != self.node_id:
            return known
        return self.node_id

    async def _claim(self, session_id: str, stale: Entry | None) -> str:
        """Claim the session for the least loaded candidate, replacing an
        entry that names no live node (or is not signed by us)."""
        won = await self.directory.claim(
            session_id, self._candidates(), stale=stale.raw if stale is not None else ""
        )
        if won.holder is None:
            raise NodeUnavailable(f"session {session_id}: its directory entry is not ours")
        if stale is None or won.raw != stale.raw:
            logger.info("session %s placed on node %s", session_id, won.holder)
        return won.holder

    async def route_join(self, data: Any, eio_sid: str, remote: str) -> Any:
        """``JoinRouting``: None to join here, a pipe to the session's node,
        or an error reply."""
        payload = data[1] if isinstance(data, list) and len(data) > 1 else None
        token = payload.get("token") if isinstance(payload, dict) else None
        if not isinstance(token, str):
            return None
        try:
            claims = verify_invite(self.config.secret, token)
        except SidecoachError:
            return None  # the join here answers it
        wanted = payload.get("sessionId") if isinstance(payload, dict) else None
        if wanted is not None and wanted != claims.session_id:
            return None
        try:
            host = await self.place(claims.session_id)
            if host == self.node_id:
                return None
            return await self.relay.hand_over(host, eio_sid, remote)
        except SidecoachError as exc:
            if isinstance(exc, NodeUnavailable):
                logger.warning("session %s: %s", claims.session_id, exc.message)
                exc = NodeUnavailable("the lesson's server is not answering; retrying")
            return {"ok": False, "error": {"code": exc.code, "message": exc.message}}

    # -- Deployment (the session manager's questions) ---------------------------

    def hosted_elsewhere(self, session_id: str) -> bool:
        node = self.where.get(session_id)
        return node is not None and node != self.node_id and node in self.nodes

    async def opening(self, session: Session) -> None:
        """A session opens here: if it was live on another node, it keeps its
        clock, and its recording continues that node's series."""
        started_at = session.record.started_at
        if started_at is not None:
            session.clock.start_from(started_at)
        continues = await self.series.continuation(session.id) if self.redis.up else None
        session.recording.continue_series(self.series, self.node_id, continues)
        if continues is not None:
            logger.info(
                "session %s: its recording continues here as part %d of %s",
                session.id,
                continues[1],
                continues[0],
            )

    # -- the admin API on any node -------------------------------------------------

    def live_summary(self, session_id: str) -> dict[str, Any] | None:
        """A session live on another node: its summary from that node's heartbeat."""
        node = self.where.get(session_id)
        info = self.nodes.get(node) if node is not None else None
        if info is None or session_id not in info.sessions:
            return None
        return {**info.sessions[session_id], "node": info.id}

    async def end_remote(self, session_id: str, reason: str) -> bool:
        """Ask the node hosting this session to end it; False if none does."""
        node = self.where.get(session_id)
        if node is None or node == self.node_id or node not in self.nodes:
            if self.redis.up:
                try:
                    entry = await self.directory.holder(session_id)
                    node = entry.holder if entry is not None else None
                except RedisUnavailable:
                    node = None
            if node is None or node == self.node_id or node not in self.nodes:
                return False
        await self.relay.request(node, "end-session", {"sessionId": session_id, "reason": reason})
        return True

    async def _end_requested(self, params: dict[str, Any]) -> dict[str, Any]:
        assert self.manager is not None
        session_id = str(params.get("sessionId", ""))
        await self.manager.end_session(session_id, reason=str(params.get("reason") or "ended"))
        return {"ended": session_id}

    # -- readiness -------------------------------------------------------------

    def not_ready(self) -> list[str]:
        reasons = []
        if not self.redis.up:
            reasons.append(f"Redis at {self.redis.name} is not answering")
        return reasons

    def describe(self) -> dict[str, Any]:
        return {
            "node": self.node_id,
            "redis": "up" if self.redis.up else "down",
            "nodes": sorted(self.nodes),
            "relayed_out": self.sio.bound_count,
            "relayed_in": self.sio.virtual_count,
        }

    def metrics(self) -> Iterator[Metric]:
        """This node's view of the deployment, for /metrics."""
        yield GaugeMetricFamily("sidecoach_redis_up", "whether Redis answers", int(self.redis.up))
        yield GaugeMetricFamily("sidecoach_nodes_live", "nodes with a heartbeat", len(self.nodes))
        yield CounterMetricFamily(
            "sidecoach_node_heartbeats", "heartbeats this node wrote", value=self.heartbeats
        )
        yield CounterMetricFamily(
            "sidecoach_nodes_lost",
            "nodes taken for dead because their link broke and they did not answer",
            value=self.nodes_lost,
        )
        refused = CounterMetricFamily(
            "sidecoach_redis_entries_refused",
            "entries read from Redis and ignored: not signed with this deployment's secret",
            labels=["kind"],
        )
        for kind, count in sorted(self.redis.signer.refused.items()):
            refused.add_metric([kind], count)
        yield refused
        relayed = GaugeMetricFamily(
            "sidecoach_relayed_sockets",
            "sockets handed over between nodes (edge: held here for another node's"
            " session; host: held by another node for a session here)",
            labels=["side"],
        )
        relayed.add_metric(["edge"], self.sio.bound_count)
        relayed.add_metric(["host"], self.sio.virtual_count)
        yield relayed
        links = len(self.hub.links())
        yield GaugeMetricFamily("sidecoach_node_links", "open links to other nodes", links)
        frames, batches = self.hub.sent()
        yield CounterMetricFamily(
            "sidecoach_node_link_frames", "frames sent to other nodes", value=frames
        )
        yield CounterMetricFamily(
            "sidecoach_node_link_messages",
            "WebSocket messages those frames went in (frames are batched)",
            value=batches,
        )

    # -- heartbeat --------------------------------------------------------------

    def _info(self) -> NodeInfo:
        now, cpu = time.monotonic(), time.process_time()
        then, cpu_then = self._cpu_mark
        self._cpu_mark = (now, cpu)
        # smoothed over ~CPU_SMOOTHING_S: a start-up or a burst of joins is
        # not "busy" (placement would send everything elsewhere for it)
        instant = 100 * (cpu - cpu_then) / max(1e-3, now - then)
        weight = 1 - math.exp(-max(0.0, now - then) / CPU_SMOOTHING_S)
        self._cpu_pct += (instant - self._cpu_pct) * weight
        manager = self.manager
        sessions = (
            {s.id: s.summary() for s in manager.sessions.values() if not s.closed}
            if manager is not None
            else {}
        )
        ice = (
            [self.config.ice_announced_ip]
            if self.config.ice_announced_ip
            else list(self.config.ice_listen_ips)
        )
        return NodeInfo(
            id=self.node_id,
            url=self.url,
            tag=self.tag,
            pid=os.getpid(),
            host=socket.gethostname(),
            ice=ice,
            started_at=self.started_at,
            draining=self.draining or (manager is not None and not manager.accepting),
            cpu_pct=round(self._cpu_pct, 1),
            participants=sum(sum(s.get("participants", {}).values()) for s in sessions.values()),
            sessions=sessions,
            reaches={p: ok for p, ok in self.hub.reaches.items() if p in self.nodes},
        )

    async def _beat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.limits.node_heartbeat_interval_s)
            try:
                await self._beat()
            except RedisUnavailable:
                pass
            except Exception:
                logger.exception("heartbeat failed; will retry")

    async def _beat(self) -> None:
        me = self._info()
        try:
            beat = await self.directory.beat(me)
        except RedisUnavailable:
            self._beat_failed = True
            raise
        self.heartbeats += 1
        now = time.monotonic()
        if self._beat_failed:
            # Redis is back (or was restarted empty): give every node one TTL
            # to write its heartbeat again before taking any for dead
            self._beat_failed = False
            self._settle_until = now + self.config.limits.node_ttl_s
        fresh, expired = self._still_dead({n.id: n for n in beat.nodes})
        for info in expired:  # its recordings, if it was still there when it was lost
            await self._take_over(info)
        fresh[self.node_id] = me
        if now < self._settle_until:
            for node_id, info in self.nodes.items():
                if node_id not in self._dead:
                    fresh.setdefault(node_id, info)
        before = dict(self.nodes)
        self.nodes = fresh
        self.unverified = beat.unverified
        self.where = {sid: n.id for n in self.nodes.values() for sid in n.sessions}
        self.where.update({sid: self.node_id for sid in me.sessions})
        for gone in sorted(set(before) - set(self.nodes)):
            if gone not in self._dead:
                await self._node_gone(before[gone], f"no heartbeat for {self.ttl_s:.0f} s")
        for session_id, entry in beat.conflicts.items():
            if entry.holder is not None and entry.holder in self.nodes:
                await self._conflict(session_id, entry.holder)
            else:  # an entry no live node of ours wrote: the session is ours
                await self.directory.take_back(session_id, entry.raw, self.node_id)
        self.hub.ensure([n for n in self.nodes if n != self.node_id])

    @property
    def ttl_s(self) -> float:
        return self.config.limits.node_ttl_s

    def _still_dead(self, fresh: dict[str, NodeInfo]) -> tuple[dict[str, NodeInfo], list[NodeInfo]]:
        """Leave out the nodes taken for dead, unless they restarted or answer
        again; also returns those whose heartbeat has now expired too."""
        expired = []
        for node_id, last in list(self._dead.items()):
            info = fresh.get(node_id)
            if info is None:
                expired.append(self._dead.pop(node_id))
            elif info.started_at != last.started_at or self.hub.linked(node_id):
                del self._dead[node_id]  # restarted, or it answers again
                logger.warning("node %s is back", node_id)
            else:
                # a heartbeat it may have written just before it died: it is
                # back only once it answers (a link to it opens)
                del fresh[node_id]
                self.hub.ensure([node_id])
        return fresh, expired

    async def _lost(self, node_id: str) -> None:
        """The link to ``node_id`` broke and it does not answer: it is dead
        now (not when its heartbeat expires): its sessions move as their
        pages rejoin."""
        info = self.nodes.pop(node_id, None)
        if info is None or node_id == self.node_id:
            return
        self.nodes_lost += 1
        self._dead[node_id] = info
        self.where = {s: n for s, n in self.where.items() if n != node_id}
        await self._node_gone(info, "its link broke and it does not answer")

    async def _node_gone(self, info: NodeInfo, why: str) -> None:
        logger.warning(
            "node %s is gone (%s): its sessions move as their pages rejoin", info.id, why
        )
        await self.hub.drop(info.id)
        await self._take_over(info)

    async def _take_over(self, info: NodeInfo) -> None:
        """Finalize the recordings a dead node sharing our data directory left."""
        node_id = info.id
        if info.host == socket.gethostname() and _running(info.pid):
            # same box, process alive: it only lost Redis or its link; its files stay its own
            logger.warning(
                "node %s (pid %d) still runs: its recordings stay its own", node_id, info.pid
            )
            return
        try:
            await take_over_node(self.catalog, node_id, self.node_id)
        except Exception:
            logger.exception("could not finalize the recordings node %s left", node_id)

    async def _conflict(self, session_id: str, holder: str) -> None:
        """Opened here and on ``holder`` while Redis was down: it stays there."""
        if self.manager is None:
            return
        self.where[session_id] = holder
        await self.manager.release(
            session_id, f"this lesson continues on another server ({holder})"
        )
