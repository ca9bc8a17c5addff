"""HTTP access to recordings, by the one access policy.

A reader is an invite for the recorded session (its role decides what it
reads), an admin, or a signed-in person (the login cookie, no token: the
policy's ``person_reader`` gives the role, by their relation to the lesson;
a recording they may not read is a 404, and the refusal is audited).
Every read of recorded data is audited. Refusals are 401/403/404 with no
recorded bytes; media is streamed with range requests.

| route | who | what |
|---|---|---|
| GET /api/recordings | invite: its session's; admin: all | the list |
| GET /api/recordings/{id} | reader | the per-role view (tracks, review files, permissions) |
| GET /api/recordings/{id}/timeline | reader | the per-role timeline |
| GET /recordings/{id}/{file} | reader | a file the policy lets it read (raw logs: admins only) |
| DELETE /api/recordings/{id} | the teacher, an admin | files gone, row marked deleted |
| GET /api/recordings/{id}/audit | the teacher, an admin | who read this recording |
| GET /api/audit | admin | the audit log, filtered |
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from server.access.policy import AccessPolicy, Action, Reader
from server.access.views import manifest_view, timeline_view
from server.core.config import Config
from server.core.errors import Forbidden, InvalidMessage
from server.core.roles import Role
from server.http import auth
from server.http.login import has_bearer, signed_in
from server.http.person_access import PersonAccess
from server.http.replies import JSON_HEADERS, json_response
from server.recording.catalog import RECORDING, RecordingCatalog, RecordingRow
from server.recording.errors import RecordingBusy, RecordingNotFound
from server.recording.event_log import read_events
from server.recording.manifest import EVENTS_FILE, read_manifest
from server.recording.retention import remove_tree
from server.storage.audit import AuditLog
from server.storage.sessions import SessionKind, SessionStore

logger = logging.getLogger(__name__)

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


#: called with a recording's id once its files are deleted (its comments go too)
DeleteHook = Callable[[str], Awaitable[None]]


class RecordingAccess:
    """Who is asking about which recording, with the audit trail: shared by
    the recording routes here and the review routes (``review_http``)."""

    def __init__(
        self,
        config: Config,
        catalog: RecordingCatalog,
        policy: AccessPolicy,
        audit: AuditLog,
        store: SessionStore,
        persons: PersonAccess | None = None,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.policy = policy
        self.audit = audit
        self.store = store
        #: signed-in persons (a login cookie instead of a token)
        self.persons = persons

    def reader(self, request: web.Request) -> tuple[Reader, str | None]:
        """Who is asking, and the session their invite is for (None: admin)."""
        return auth.reader(request, self.config.secret)

    async def recording(
        self, request: web.Request
    ) -> tuple[RecordingRow, dict[str, Any], Reader]:
        """The recording of the URL, its manifest and its reader; raises for
        anyone who may not read it at all."""
        if self.persons is not None and not has_bearer(request) and signed_in(request):
            return await self._person_recording(request, self.persons)
        reader, session_id = self.reader(request)
        row = await self.catalog.get(request.match_info["recording_id"])
        if row is None or row.deleted:
            raise RecordingNotFound("no such recording")
        if session_id is not None and session_id != row.session_id:
            # a debrief's members watch the one recording it is attached to
            record = await self.store.get(session_id)
            if record.kind != SessionKind.DEBRIEF or record.recording_id != row.id:
                raise Forbidden("this recording belongs to another session")
        manifest = await asyncio.get_running_loop().run_in_executor(
            None, read_manifest, row.directory
        )
        if reader.name is None:  # an invite without a name: the lesson's teacher, or the role
            name = manifest.get("teacher_name") if reader.role == Role.TEACHER else None
            reader = Reader(reader.role, reader.invite_id, str(name or reader.role))
        return row, manifest, reader

    async def _person_recording(
        self, request: web.Request, persons: PersonAccess
    ) -> tuple[RecordingRow, dict[str, Any], Reader]:
        row = await self.catalog.get(request.match_info["recording_id"])
        if row is None or row.deleted:
            raise RecordingNotFound("no such recording")
        reader = await persons.reader_for_recording(request, row)
        manifest = await asyncio.get_running_loop().run_in_executor(
            None, read_manifest, row.directory
        )
        return row, manifest, reader

    async def audited(
        self,
        reader: Reader,
        action: str,
        row: RecordingRow,
        *,
        item: str | None = None,
        bytes_read: int = 0,
        range_: str | None = None,
    ) -> None:
        entry: dict[str, Any] = {
            "action": action,
            "who": reader.describe(),
            "recording": row.id,
            "session": row.session_id,
            "bytes": bytes_read,
        }
        if item is not None:
            entry["item"] = item
        if range_:
            entry["range"] = range_[:100]
        await self.audit.append(entry)

    async def timeline(
        self, row: RecordingRow, manifest: dict[str, Any], reader: Reader
    ) -> dict[str, Any]:
        events = await asyncio.get_running_loop().run_in_executor(
            None, read_events, row.directory / EVENTS_FILE
        )
        start, end = manifest.get("start_ms"), manifest.get("end_ms")
        return timeline_view(
            self.policy,
            reader,
            events,
            categories=list(manifest.get("tally_categories") or []),
            span=(int(start), int(end)) if start is not None and end is not None else None,
        )


class _RecordingApi:
    def __init__(self, access: RecordingAccess, on_delete: DeleteHook) -> None:
        self._access = access
        self._config = access.config
        self._catalog = access.catalog
        self._policy = access.policy
        self._audit = access.audit
        self._on_delete = on_delete
        self._reader = access.reader
        self._recording = access.recording
        self._audited = access.audited

    # -- handlers ---------------------------------------------------------------

    async def list_recordings(self, request: web.Request) -> web.Response:
        reader, session_id = self._reader(request)
        rows = await self._catalog.recordings(session_id)
        body = {
            "recordings": [r.to_json() for r in rows],
            # what this reader may do with them (the same for each: one session)
            "permissions": self._policy.permissions(reader),
        }
        return json_response(body)

    async def get_view(self, request: web.Request) -> web.Response:
        row, manifest, reader = await self._recording(request)
        view = manifest_view(
            self._policy, reader, row, manifest, retention_days=self._config.retention_days
        )
        body: dict[str, Any] = {"recording": row.to_json(), "view": view}
        if reader.is_admin:
            body["manifest"] = manifest
        await self._audited(reader, "view", row)
        return json_response(body)

    async def get_timeline(self, request: web.Request) -> web.Response:
        row, manifest, reader = await self._recording(request)
        timeline = await self._access.timeline(row, manifest, reader)
        await self._audited(reader, "timeline", row)
        return json_response({"recording": row.id, "timeline": timeline})

    async def get_file(self, request: web.Request) -> web.StreamResponse:
        row, manifest, reader = await self._recording(request)
        name = request.match_info["name"]
        if not SAFE_NAME.match(name):
            raise RecordingNotFound("no such file in this recording")
        if not self._policy.may_fetch(reader, manifest, name):
            # a file this reader may not read does not exist for them
            raise RecordingNotFound("no such file in this recording")
        path = row.directory / name
        if not path.is_file():
            raise RecordingNotFound("file is missing")
        size = path.stat().st_size
        try:
            start, stop, _ = request.http_range.indices(size)
        except ValueError:  # a malformed Range: aiohttp answers it with 416
            start = stop = 0
        await self._audited(
            reader,
            "read",
            row,
            item=name,
            bytes_read=max(0, stop - start),
            range_=request.headers.get("Range"),
        )
        headers = {"Content-Type": _content_type(name), **JSON_HEADERS}
        return web.FileResponse(path, headers=headers)

    async def delete(self, request: web.Request) -> web.Response:
        row, _, reader = await self._recording(request)
        if not self._policy.may(reader, Action.DELETE_RECORDING):
            raise Forbidden("only the teacher of this lesson or an admin can delete it")
        if row.state == RECORDING:
            raise RecordingBusy("this recording is still being made: stop it first")
        await asyncio.get_running_loop().run_in_executor(None, remove_tree, row.directory)
        who = "admin" if reader.is_admin else f"{reader.role}: {reader.name}"
        await self._catalog.mark_deleted(row.id, by=who, at=time.time())
        await self._on_delete(row.id)
        await self._audited(reader, "delete", row)
        logger.info("recording %s of session %s deleted by %s", row.id, row.session_id, who)
        deleted = await self._catalog.get(row.id)
        return json_response({"recording": deleted.to_json() if deleted else None})

    async def recording_audit(self, request: web.Request) -> web.Response:
        row, _, reader = await self._recording(request)
        if not self._policy.may(reader, Action.READ_AUDIT):
            raise Forbidden("only the teacher of this lesson or an admin can see this")
        entries = await self._audit.query(recording=row.id)
        return json_response({"recording": row.id, "entries": [_public(e) for e in entries]})

    async def audit(self, request: web.Request) -> web.Response:
        reader, _ = self._reader(request)
        if not reader.is_admin:  # the whole district's log, not one recording's
            raise Forbidden("the audit log is for admins")
        q = request.query
        entries = await self._audit.query(
            recording=q.get("recording"),
            session=q.get("session"),
            since=_float(q.get("since")),
            until=_float(q.get("until")),
            action=q.get("action"),
            limit=int(_float(q.get("limit")) or 200),
        )
        return json_response({"entries": entries})


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    """An audit entry as a teacher sees it: names and roles, no invite ids."""
    who = dict(entry.get("who") or {})
    who.pop("invite", None)
    return {**entry, "who": who}


def _float(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise InvalidMessage(f"not a number: {value[:20]!r}") from exc


def _content_type(name: str) -> str:
    if name.endswith(".webm"):
        return "video/webm"
    if name.endswith(".mp4"):
        return "video/mp4"
    if name.endswith(".jpg"):
        return "image/jpeg"
    if name.endswith(".mkv"):
        return "video/x-matroska"
    if name.endswith(".json"):
        return "application/json"
    return "application/x-ndjson" if name.endswith(".jsonl") else "application/octet-stream"


async def _nothing(recording_id: str) -> None:
    return None


def setup_recording_api(
    app: web.Application, access: RecordingAccess, *, on_delete: DeleteHook = _nothing
) -> None:
    api = _RecordingApi(access, on_delete)
    app.router.add_get("/api/recordings", api.list_recordings)
    app.router.add_get("/api/recordings/{recording_id}", api.get_view)
    app.router.add_delete("/api/recordings/{recording_id}", api.delete)
    app.router.add_get("/api/recordings/{recording_id}/timeline", api.get_timeline)
    app.router.add_get("/api/recordings/{recording_id}/audit", api.recording_audit)
    app.router.add_get("/api/audit", api.audit)
    app.router.add_get("/recordings/{recording_id}/{name}", api.get_file)
