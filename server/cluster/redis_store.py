"""Sessions in Redis, for a deployment on several boxes
(``SIDECOACH_STORE=redis``; nodes on one box can share the SQLite file).

Redis is the truth: ``sidecoach:record:<id>`` holds a session as JSON,
signed with the deployment's secret (``signing.py``: a record that is not
is ignored, as if it did not exist, and counted), and
``sidecoach:records:<state>`` (sorted by creation time) index them by state.
A state change is checked and written in one optimistic transaction
(WATCH/MULTI), so two nodes never both move a session.

Each node keeps a **mirror** in ``DATA_DIR/session-mirror.sqlite3`` of every
session it has read or written. While Redis does not answer, reads come
from the mirror and writes go to the mirror and to a **journal**; when Redis
answers again the journal is replayed in order. Replaying is safe because a
session only ever moves forward (scheduled -> live -> ended: a change that
is no longer possible is dropped) and its recording decisions are only ever
appended (one already there is not added twice). Redis used as the store
must persist what it holds (``appendonly yes``): a Redis restarted empty
loses the sessions other nodes never mirrored.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from redis.exceptions import WatchError

from server.cluster.directory import PREFIX
from server.cluster.errors import RedisUnavailable
from server.cluster.redis_conn import RedisConn
from server.cluster.signing import RECORD
from server.core.errors import SessionNotFound, SidecoachError
from server.core.roles import SessionState
from server.core.tasks import TaskOwner
from server.storage.sessions import (
    RecordingDecision,
    SessionKind,
    SessionRecord,
    SessionSettings,
    new_record,
)
from server.storage.sqlite_worker import SqliteWorker

logger = logging.getLogger(__name__)

MIRROR_FILE = "session-mirror.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mirror (id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    op TEXT NOT NULL,
    session_id TEXT NOT NULL,
    args TEXT NOT NULL
);
"""


def record_key(session_id: str) -> str:
    return f"{PREFIX}record:{session_id}"


def state_key(state: SessionState) -> str:
    return f"{PREFIX}records:{state.value}"


def record_to_json(record: SessionRecord) -> str:
    return json.dumps(record.to_json())


def record_from_json(raw: str) -> SessionRecord:
    return SessionRecord.from_json(json.loads(raw))


class RedisSessionStore:
    """``SessionStore`` in Redis, with a local mirror for outages."""

    def __init__(self, redis: RedisConn, db: SqliteWorker) -> None:
        #: shared with the cluster node (one connection, one outage log)
        self.redis = redis
        self._redis = redis
        self._signer = redis.signer
        self._db = db
        redis.on_change(self._redis_changed)
        self._replaying = False
        self._tasks = TaskOwner("session store")

    @classmethod
    async def open(
        cls, url: str, data_dir: Path, secret: str, *, tls_ca: Path | None = None
    ) -> RedisSessionStore:
        db = await SqliteWorker.open(Path(data_dir) / MIRROR_FILE, _SCHEMA)
        store = cls(RedisConn(url, secret, tls_ca=tls_ca), db)
        with contextlib.suppress(RedisUnavailable):  # logged; replayed when Redis answers
            await store.replay()
        return store

    # -- the mirror and the journal ---------------------------------------------

    async def _mirror(self, records: Iterable[SessionRecord]) -> None:
        rows = [(r.id, record_to_json(r)) for r in records]
        if rows:
            await self._db.run(
                lambda c: c.executemany("INSERT OR REPLACE INTO mirror VALUES (?, ?)", rows)
            )

    async def _mirrored(self, session_id: str) -> SessionRecord:
        row = await self._db.run(
            lambda c: c.execute("SELECT record FROM mirror WHERE id = ?", (session_id,)).fetchone()
        )
        if row is None:
            raise SessionNotFound(f"no session {session_id!r} (Redis is not answering)")
        return record_from_json(row[0])

    async def _journal(self, op: str, session_id: str, args: dict[str, Any]) -> None:
        line = json.dumps(args)
        await self._db.run(
            lambda c: c.execute(
                "INSERT INTO journal (op, session_id, args) VALUES (?, ?, ?)",
                (op, session_id, line),
            )
        )
        logger.warning("session %s: %s kept locally until Redis answers", session_id, op)

    def _redis_changed(self, up: bool) -> None:
        if up and not self._replaying:
            self._tasks.spawn(self._replay_logged(), name="store replay")

    async def _replay_logged(self) -> None:
        try:
            replayed = await self.replay()
            if replayed:
                logger.warning("replayed %d session changes kept while Redis was down", replayed)
        except RedisUnavailable:
            pass
        except Exception:
            logger.exception("replaying the session journal failed; will retry")

    async def replay(self) -> int:
        """Write what the journal holds to Redis, oldest first."""
        if self._replaying:
            return 0
        self._replaying = True
        done = 0
        try:
            rows: list[tuple[int, str, str, str]] = await self._db.run(
                lambda c: c.execute(
                    "SELECT seq, op, session_id, args FROM journal ORDER BY seq"
                ).fetchall()
            )
            for seq, op, session_id, raw in rows:
                await self._replay_one(op, session_id, json.loads(raw))
                await self._db.run(
                    lambda c, s=seq: c.execute("DELETE FROM journal WHERE seq = ?", (s,))  # type: ignore[misc]
                )
                done += 1
        finally:
            self._replaying = False
        return done

    async def _replay_one(self, op: str, session_id: str, args: dict[str, Any]) -> None:
        if op == "create":
            raw = str(args["record"])
            await self._redis.run(lambda r: self._put_new(r, raw))
            return
        if op == "state":
            state, at = SessionState(args["state"]), float(args["at"])

            def change(rec: SessionRecord) -> SessionRecord | None:
                return rec.moved_to(state, at)

        else:
            decision = RecordingDecision.from_json(args["decision"])

            def change(rec: SessionRecord) -> SessionRecord | None:
                return rec.with_decision(decision)

        try:
            await self._change(session_id, change)
        except RedisUnavailable:
            raise
        except SidecoachError as exc:  # e.g. already ended by another node
            logger.warning(
                "session %s: dropped a %s kept while Redis was down: %s", session_id, op, exc
            )

    # -- Redis ------------------------------------------------------------------

    def _signed(self, record: SessionRecord) -> str:
        return self._signer.sign(record_key(record.id), record_to_json(record))

    def _opened(self, session_id: str, raw: str | None) -> SessionRecord | None:
        """The record in a value read from Redis, if it is signed by us."""
        value = self._signer.open(RECORD, record_key(session_id), raw)
        return record_from_json(value) if value is not None else None

    async def _put_new(self, r: Any, raw: str) -> None:
        record = record_from_json(raw)
        if await r.set(record_key(record.id), self._signed(record), nx=True):
            await r.zadd(state_key(record.state), {record.id: record.created_at})

    async def _change(self, session_id: str, change: Any) -> SessionRecord:
        """Apply ``change(record) -> new record | None`` atomically in Redis."""

        async def run(r: Any) -> SessionRecord:
            key = record_key(session_id)
            async with r.pipeline() as pipe:
                while True:
                    try:
                        await pipe.watch(key)
                        record = self._opened(session_id, await pipe.get(key))
                        if record is None:
                            raise SessionNotFound(f"no session {session_id!r}")
                        new = change(record)
                        if new is None:
                            await pipe.unwatch()
                            return record
                        pipe.multi()
                        pipe.set(key, self._signed(new))
                        if new.state != record.state:
                            pipe.zrem(state_key(record.state), session_id)
                            pipe.zadd(state_key(new.state), {session_id: new.created_at})
                        await pipe.execute()
                        return new  # type: ignore[no-any-return]
                    except WatchError:
                        continue

        record: SessionRecord = await self._redis.run(run)
        await self._mirror([record])
        return record

    # -- SessionStore ------------------------------------------------------------

    async def create(
        self,
        *,
        title: str,
        teacher_name: str,
        settings: SessionSettings,
        scheduled_for: float | None = None,
        kind: SessionKind = SessionKind.LESSON,
        recording_id: str | None = None,
    ) -> SessionRecord:
        record = new_record(
            title=title,
            teacher_name=teacher_name,
            settings=settings,
            scheduled_for=scheduled_for,
            kind=kind,
            recording_id=recording_id,
        )
        raw = record_to_json(record)
        await self._mirror([record])
        try:
            await self._redis.run(lambda r: self._put_new(r, raw))
        except RedisUnavailable:
            await self._journal("create", record.id, {"record": raw})
        logger.info("session %s created: %r", record.id, record.title)
        return record

    async def get(self, session_id: str) -> SessionRecord:
        try:
            raw = await self._redis.run(lambda r: r.get(record_key(session_id)))
        except RedisUnavailable:
            return await self._mirrored(session_id)
        record = self._opened(session_id, raw)
        if record is None and raw is not None:
            # not ours (see signing.py): the last copy we believed, if any
            return await self._mirrored(session_id)
        if record is None:
            raise SessionNotFound(f"no session {session_id!r}")
        await self._mirror([record])
        return record

    async def list(self, states: Iterable[SessionState] | None = None) -> list[SessionRecord]:
        wanted = list(SessionState) if states is None else [SessionState(s) for s in states]

        async def run(r: Any) -> list[SessionRecord]:
            ids: list[str] = []
            for state in wanted:
                ids += await r.zrange(state_key(state), 0, -1)
            raws = await r.mget([record_key(i) for i in ids]) if ids else []
            opened = [self._opened(i, raw) for i, raw in zip(ids, raws, strict=True) if raw]
            return [rec for rec in opened if rec is not None and rec.state in wanted]

        try:
            records = await self._redis.run(run)
        except RedisUnavailable:
            rows = await self._db.run(lambda c: c.execute("SELECT record FROM mirror").fetchall())
            records = [record_from_json(row[0]) for row in rows]
            records = [r for r in records if r.state in wanted]
        else:
            await self._mirror(records)
        return sorted(records, key=lambda r: (r.created_at, r.id))

    async def set_state(self, session_id: str, state: SessionState, *, at: float) -> SessionRecord:
        state = SessionState(state)
        try:
            record = await self._change(session_id, lambda rec: rec.moved_to(state, at))
        except RedisUnavailable:
            current = await self._mirrored(session_id)
            new = current.moved_to(state, at)
            if new is None:
                return current
            await self._mirror([new])
            await self._journal("state", session_id, {"state": state.value, "at": at})
            record = new
        logger.info("session %s is %s", session_id, record.state)
        return record

    async def add_recording_decision(
        self, session_id: str, decision: RecordingDecision
    ) -> SessionRecord:
        try:
            return await self._change(session_id, lambda rec: rec.with_decision(decision))
        except RedisUnavailable:
            current = await self._mirrored(session_id)
            new = current.with_decision(decision) or current
            await self._mirror([new])
            await self._journal("decision", session_id, {"decision": decision.to_json()})
            return new

    async def pending(self) -> int:
        """Changes waiting in the journal for Redis."""
        row = await self._db.run(lambda c: c.execute("SELECT COUNT(*) FROM journal").fetchone())
        return int(row[0])

    async def close(self) -> None:
        await self._tasks.aclose()
        await self._db.close()
        await self._redis.close()
