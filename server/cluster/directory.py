"""What Redis holds about the deployment: node heartbeats, the session ->
node directory and recent claims. Pure data access; ``node.py`` decides
what to do.

Keys (all under ``sidecoach:``; every value signed, ``signing.py``):

| key | value | lifetime |
|---|---|---|
| ``node:<id>`` | the node's heartbeat (NodeInfo as JSON) | ``NODE_TTL_S`` |
| ``nodes`` | sorted set: node id -> last heartbeat (unix ms) | pruned after a day |
| ``session:<id>`` | the node hosting the session | ``NODE_TTL_S``, refreshed by that node |
| ``claims:<node>`` | sorted set: sessions placed on the node -> when (ms) | ``CLAIM_WINDOW_MS`` |
| ``recseries:<id>`` | the session's recording series (series.py) | two days |

**Placement is one atomic step** (a Lua script, ``_CLAIM``): the entry is
kept when it names a node that still has a heartbeat key and the caller
has not found it stale (a bad signature, a node it knows is dead); else
the script places the session on the least loaded of the candidates the
caller passes (in order of preference: the caller itself first): the load
of a node is the sessions its heartbeat lists plus the sessions claimed
for it in the last ``CLAIM_WINDOW_MS`` that its heartbeat does not list
yet. So N joins arriving together on any nodes spread over the nodes:
every claim sees every claim before it, also those another node made a
millisecond earlier. Redis itself cannot check signatures (it never sees
the secret): the callers check what they read and name what they found
stale, and the scripts replace only that exact value. (One Redis, not
Redis Cluster: the scripts touch keys they are not given.)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from server.cluster.redis_conn import RedisConn
from server.cluster.signing import NODE, SESSION, EntrySigner

PREFIX = "sidecoach:"
NODES_KEY = PREFIX + "nodes"
NODE_PREFIX = PREFIX + "node:"
CLAIMS_PREFIX = PREFIX + "claims:"
#: heartbeats of nodes gone for longer than this are forgotten
FORGET_NODES_AFTER_S = 24 * 3600.0
#: a claim counts towards its node's load this long (or until the node's
#: heartbeat lists the session): far longer than a hand-over takes
CLAIM_WINDOW_MS = 10_000


def node_key(node_id: str) -> str:
    return f"{NODE_PREFIX}{node_id}"


def session_key(session_id: str) -> str:
    return f"{PREFIX}session:{session_id}"


# The node an entry names: what follows the 64 hex digits of its signature.
_HOLDER = """
local function holder(v)
  if string.sub(v, 65, 65) == ':' then return string.sub(v, 66) end
  return v
end
"""

# KEYS[1]: the session's entry. ARGV[1]: node key prefix, ARGV[2]: entry TTL
# (ms), ARGV[3]: the value the caller found stale ("" if none), ARGV[4]:
# claims key prefix, ARGV[5]: claim window (ms), ARGV[6]: the session id,
# then per candidate: node id, its signed entry, its heartbeat's sessions
# (comma-joined). Returns the entry now held.
_CLAIM = (
    _HOLDER
    + """
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[3] and redis.call('EXISTS', ARGV[1] .. holder(cur)) == 1 then
  return cur
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local best, best_load = nil, nil
for i = 7, #ARGV, 3 do
  local claims = ARGV[4] .. ARGV[i]
  redis.call('ZREMRANGEBYSCORE', claims, '-inf', now - tonumber(ARGV[5]))
  local hosted, load = {}, 0
  for sid in string.gmatch(ARGV[i + 2], '[^,]+') do
    hosted[sid] = true
    load = load + 1
  end
  for _, sid in ipairs(redis.call('ZRANGE', claims, 0, -1)) do
    if not hosted[sid] and sid ~= ARGV[6] then load = load + 1 end
  end
  if best_load == nil or load < best_load then best, best_load = i, load end
end
redis.call('SET', KEYS[1], ARGV[best + 1], 'PX', ARGV[2])
local claims = ARGV[4] .. ARGV[best]
redis.call('ZADD', claims, now, ARGV[6])
redis.call('PEXPIRE', claims, ARGV[5])
return ARGV[best + 1]
"""
)

# KEYS: the entries of the sessions this node hosts; ARGV[1]: this node,
# ARGV[2]: TTL (ms), ARGV[3]: node key prefix, then one signed entry per
# key. Refreshes (or re-creates) each entry; returns {index, value} for
# entries that name another node with a heartbeat key.
_REFRESH = (
    _HOLDER
    + """
local conflicts = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if cur and holder(cur) ~= ARGV[1] and redis.call('EXISTS', ARGV[3] .. holder(cur)) == 1 then
    table.insert(conflicts, i)
    table.insert(conflicts, cur)
  else
    redis.call('SET', key, ARGV[3 + i], 'PX', ARGV[2])
  end
end
return conflicts
"""
)

# KEYS[1]: an entry; ARGV[1]: the value it must still have, ARGV[2]: the
# new value, ARGV[3]: TTL (ms). Compare and set; returns 1 if set.
_REPLACE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""

# KEYS[1]: an entry; ARGV[1]: this node. Deletes it if it names us.
_RELEASE = (
    _HOLDER
    + """
local cur = redis.call('GET', KEYS[1])
if cur and holder(cur) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
)


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
    #: process CPU, % of one core, smoothed over ~10 s (node.CPU_SMOOTHING_S)
    cpu_pct: float = 0.0
    participants: int = 0
    #: session id -> live summary (participants by role, tracks, ...)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: other node id -> whether its node URL answered as that node (its
    #: link handshake proved the shared secret) the last time it was tried
    reaches: dict[str, bool] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> NodeInfo:
        data = json.loads(raw)
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Entry:
    """A session's directory entry as read: its raw value, and the node it
    names if its signature holds (None: stale, whoever wrote it)."""

    raw: str
    holder: str | None


@dataclass
class Beat:
    """What a heartbeat read back."""

    #: live nodes whose heartbeats are signed by this deployment
    nodes: list[NodeInfo]
    #: session of ours -> the entry another node's name holds
    conflicts: dict[str, Entry]
    #: node ids with a heartbeat key that did not verify (another secret?)
    unverified: list[str]


class Directory:
    def __init__(self, redis: RedisConn, node_ttl_s: float) -> None:
        self.redis = redis
        self.signer: EntrySigner = redis.signer
        self.ttl_ms = int(node_ttl_s * 1000)
        self._claim: Any = redis.client.register_script(_CLAIM)
        self._refresh: Any = redis.client.register_script(_REFRESH)
        self._replace: Any = redis.client.register_script(_REPLACE)
        self._release: Any = redis.client.register_script(_RELEASE)

    def entry(self, session_id: str, raw: str) -> Entry:
        return Entry(raw, self.signer.open(SESSION, session_key(session_id), raw))

    def _entry_for(self, session_id: str, node_id: str) -> str:
        return self.signer.sign(session_key(session_id), node_id)

    def read_nodes(
        self, ids: list[str], raws: list[str | None]
    ) -> tuple[list[NodeInfo], list[str]]:
        """Verified heartbeats of ``ids``, and the ids whose did not verify."""
        nodes, unverified = [], []
        for node_id, raw in zip(ids, raws, strict=True):
            value = self.signer.open(NODE, node_key(node_id), raw) if raw else None
            info = NodeInfo.from_json(value) if value is not None else None
            if info is not None and info.id == node_id:
                nodes.append(info)
            elif raw:
                unverified.append(node_id)
        return nodes, unverified

    async def beat(self, me: NodeInfo) -> Beat:
        """Write this node's heartbeat, refresh its sessions' entries and
        read every live node."""
        now = time.time()
        me.heartbeat_at = now
        hosted = list(me.sessions)
        beat = self.signer.sign(node_key(me.id), me.to_json())

        async def run(r: Any) -> Beat:
            async with r.pipeline(transaction=False) as pipe:
                pipe.set(node_key(me.id), beat, px=self.ttl_ms)
                pipe.zadd(NODES_KEY, {me.id: int(now * 1000)})
                pipe.zremrangebyscore(NODES_KEY, "-inf", int((now - FORGET_NODES_AFTER_S) * 1000))
                pipe.zrangebyscore(NODES_KEY, int(now * 1000) - self.ttl_ms, "+inf")
                results = await pipe.execute()
            conflicts: dict[str, Entry] = {}
            if hosted:
                found = await self._refresh(
                    keys=[session_key(s) for s in hosted],
                    args=[
                        me.id,
                        self.ttl_ms,
                        NODE_PREFIX,
                        *(self._entry_for(s, me.id) for s in hosted),
                    ],
                    client=r,
                )
                for i in range(0, len(found), 2):
                    session_id = hosted[int(found[i]) - 1]
                    conflicts[session_id] = self.entry(session_id, str(found[i + 1]))
            ids = [str(i) for i in results[3]]
            raws = await r.mget([node_key(i) for i in ids]) if ids else []
            nodes, unverified = self.read_nodes(ids, raws)
            return Beat(nodes, conflicts, unverified)

        return await self.redis.run(run)

    async def holder(self, session_id: str) -> Entry | None:
        """The session's entry (whoever it names, alive or not), or None."""
        raw: str | None = await self.redis.run(lambda r: r.get(session_key(session_id)))
        return self.entry(session_id, raw) if raw is not None else None

    async def claim(self, session_id: str, candidates: list[NodeInfo], *, stale: str = "") -> Entry:
        """Place the session on the least loaded of ``candidates`` (the
        first on a tie) unless its entry names a node with a heartbeat and
        is not ``stale`` (the value the caller found stale); the entry now held."""
        args: list[Any] = [NODE_PREFIX, self.ttl_ms, stale, CLAIMS_PREFIX, CLAIM_WINDOW_MS]
        args.append(session_id)
        for node in candidates:
            args += [node.id, self._entry_for(session_id, node.id), ",".join(node.sessions)]
        raw: str = await self.redis.run(
            lambda r: self._claim(keys=[session_key(session_id)], args=args, client=r)
        )
        return self.entry(session_id, str(raw))

    async def take_back(self, session_id: str, stale: str, node_id: str) -> bool:
        """Replace an entry found stale with one naming ``node_id``, if it
        still holds exactly ``stale``."""
        done: int = await self.redis.run(
            lambda r: self._replace(
                keys=[session_key(session_id)],
                args=[stale, self._entry_for(session_id, node_id), self.ttl_ms],
                client=r,
            )
        )
        return bool(done)

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

    async def live_nodes(self) -> tuple[list[NodeInfo], list[str]]:
        """Every node with a heartbeat now (verified), and the ids of
        heartbeats that did not verify (``sidecoach cluster check``)."""
        now_ms = int(time.time() * 1000)

        async def run(r: Any) -> tuple[list[NodeInfo], list[str]]:
            ids = [str(i) for i in await r.zrangebyscore(NODES_KEY, now_ms - self.ttl_ms, "+inf")]
            raws = await r.mget([node_key(i) for i in ids]) if ids else []
            return self.read_nodes(ids, raws)

        return await self.redis.run(run)
