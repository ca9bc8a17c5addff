"""What Redis holds about the deployment: node heartbeats and the session
-> node directory. Pure data access; ``node.py`` decides what to do.

Keys (all under ``sidecoach:``):

| key | value | lifetime |
|---|---|---|
| ``node:<id>`` | the node's heartbeat (NodeInfo as JSON) | ``NODE_TTL_S`` |
| ``nodes`` | sorted set: node id -> last heartbeat (unix ms) | pruned after a day |
| ``session:<id>`` | the node hosting the session | ``NODE_TTL_S``, refreshed by that node |
| ``recseries:<id>`` | the session's recording series (series.py) | two days |

A directory entry is claimed atomically (a Lua script): it is set when
missing, or when the node it names has no heartbeat any more (dead); else
the current holder wins. A node refreshes the entries of the sessions it
hosts with every heartbeat, so the entries of a killed node expire with it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from server.cluster.redis_conn import RedisConn

PREFIX = "sidecoach:"
NODES_KEY = PREFIX + "nodes"
#: heartbeats of nodes gone for longer than this are forgotten
FORGET_NODES_AFTER_S = 24 * 3600.0


def node_key(node_id: str) -> str:
    return f"{PREFIX}node:{node_id}"


def session_key(session_id: str) -> str:
    return f"{PREFIX}session:{session_id}"


# KEYS[1]: the session's entry; ARGV[1]: candidate node, ARGV[2]: TTL (ms),
# ARGV[3]: node key prefix. Returns the node now holding the session.
_CLAIM = """
local cur = redis.call('GET', KEYS[1])
if cur and redis.call('EXISTS', ARGV[3] .. cur) == 1 then
  return cur
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""

# KEYS: the entries of the sessions this node hosts; ARGV[1]: this node,
# ARGV[2]: TTL (ms), ARGV[3]: node key prefix. Refreshes (or re-creates)
# each entry; returns {index, holder} for entries another live node holds.
_REFRESH = """
local conflicts = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if cur and cur ~= ARGV[1] and redis.call('EXISTS', ARGV[3] .. cur) == 1 then
    table.insert(conflicts, i)
    table.insert(conflicts, cur)
  else
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  end
end
return conflicts
"""

# KEYS[1]: an entry; ARGV[1]: this node. Deletes it if it is ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass
class NodeInfo:
    """One node's heartbeat."""

    id: str
    url: str
    #: prefix of this node's Engine.IO session ids
    tag: str
    pid: int
    host: str
    #: addresses this node announces in ICE
    ice: list[str]
    started_at: float
    heartbeat_at: float = 0.0
    draining: bool = False
    #: process CPU over the last heartbeat interval, % of one core
    cpu_pct: float = 0.0
    participants: int = 0
    #: session id -> live summary (participants by role, tracks, ...)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> NodeInfo:
        data = json.loads(raw)
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


class Directory:
    def __init__(self, redis: RedisConn, node_ttl_s: float) -> None:
        self.redis = redis
        self.ttl_ms = int(node_ttl_s * 1000)
        self._claim: Any = redis.client.register_script(_CLAIM)
        self._refresh: Any = redis.client.register_script(_REFRESH)
        self._release: Any = redis.client.register_script(_RELEASE)

    async def beat(self, me: NodeInfo) -> tuple[list[NodeInfo], dict[str, str]]:
        """Write this node's heartbeat, refresh its sessions' entries and
        read every live node. Returns (live nodes, {session: other holder}
        for sessions of ours another live node holds)."""
        now = time.time()
        me.heartbeat_at = now
        hosted = list(me.sessions)

        async def run(r: Any) -> tuple[list[NodeInfo], dict[str, str]]:
            async with r.pipeline(transaction=False) as pipe:
                pipe.set(node_key(me.id), me.to_json(), px=self.ttl_ms)
                pipe.zadd(NODES_KEY, {me.id: int(now * 1000)})
                pipe.zremrangebyscore(NODES_KEY, "-inf", int((now - FORGET_NODES_AFTER_S) * 1000))
                pipe.zrangebyscore(NODES_KEY, int(now * 1000) - self.ttl_ms, "+inf")
                results = await pipe.execute()
            conflicts: dict[str, str] = {}
            if hosted:
                found = await self._refresh(
                    keys=[session_key(s) for s in hosted],
                    args=[me.id, self.ttl_ms, PREFIX + "node:"],
                    client=r,
                )
                for i in range(0, len(found), 2):
                    conflicts[hosted[int(found[i]) - 1]] = str(found[i + 1])
            ids = [str(i) for i in results[3]]
            raws = await r.mget([node_key(i) for i in ids]) if ids else []
            nodes = [NodeInfo.from_json(raw) for raw in raws if raw]
            return nodes, conflicts

        return await self.redis.run(run)

    async def holder(self, session_id: str) -> str | None:
        """The node the directory names for this session (alive or not)."""
        found: str | None = await self.redis.run(lambda r: r.get(session_key(session_id)))
        return found

    async def claim(self, session_id: str, node_id: str) -> str:
        """Place the session on ``node_id`` unless a live node holds it;
        returns the holder."""
        holder: str = await self.redis.run(
            lambda r: self._claim(
                keys=[session_key(session_id)],
                args=[node_id, self.ttl_ms, PREFIX + "node:"],
                client=r,
            )
        )
        return holder

    async def release(self, node_id: str, session_ids: list[str]) -> None:
        """Drop the entries of these sessions if they still name ``node_id``."""

        async def run(r: Any) -> None:
            for session_id in session_ids:
                await self._release(keys=[session_key(session_id)], args=[node_id], client=r)

        await self.redis.run(run)

    async def leave(self, node_id: str) -> None:
        """This node stops: its heartbeat goes at once (no waiting for the TTL)."""

        async def run(r: Any) -> None:
            await r.delete(node_key(node_id))
            await r.zrem(NODES_KEY, node_id)

        await self.redis.run(run)
