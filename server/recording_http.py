"""HTTP access to recordings: only members of the recorded session (an
invite token for it) or an admin get anything; everyone else gets 403/404
and zero bytes. Media is streamed with HTTP range requests."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from aiohttp import web

from server.config import Config
from server.errors import Forbidden, SidecoachError, Unauthorized
from server.http_api import error_response
from server.recording.catalog import RecordingCatalog, RecordingRow
from server.recording.errors import RecordingNotFound
from server.recording.manifest import EVENTS_FILE, MANIFEST_FILE, read_manifest
from server.tokens import InviteClaims, verify_admin_token, verify_invite

logger = logging.getLogger(__name__)

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    token = request.query.get("token", "")
    if not token:
        raise Unauthorized("a token is required")
    return token


class _RecordingApi:
    def __init__(self, config: Config, catalog: RecordingCatalog) -> None:
        self._config = config
        self._catalog = catalog

    def _who(self, request: web.Request) -> InviteClaims | None:
        """The invite claims of the caller, or None for an admin."""
        token = _token(request)
        try:
            verify_admin_token(self._config.secret, token)
            return None
        except Unauthorized:
            return verify_invite(self._config.secret, token)

    async def _recording(self, request: web.Request) -> tuple[RecordingRow, dict[str, Any]]:
        who = self._who(request)
        row = await self._catalog.get(request.match_info["recording_id"])
        if row is None:
            raise RecordingNotFound("no such recording")
        if who is not None and who.session_id != row.session_id:
            raise Forbidden("this recording belongs to another session")
        manifest = await asyncio.get_running_loop().run_in_executor(
            None, read_manifest, row.directory
        )
        return row, manifest

    async def list_recordings(self, request: web.Request) -> web.Response:
        try:
            who = self._who(request)
            rows = await self._catalog.recordings(None if who is None else who.session_id)
        except SidecoachError as exc:
            return error_response(exc)
        return web.json_response({"recordings": [r.to_json() for r in rows]})

    async def get_manifest(self, request: web.Request) -> web.Response:
        try:
            row, manifest = await self._recording(request)
        except SidecoachError as exc:
            return error_response(exc)
        return web.json_response({"recording": row.to_json(), "manifest": manifest})

    async def get_file(self, request: web.Request) -> web.StreamResponse:
        try:
            row, manifest = await self._recording(request)
            name = request.match_info["name"]
            allowed = {t["file"] for t in manifest.get("tracks", [])}
            allowed |= {EVENTS_FILE, MANIFEST_FILE}
            review = manifest.get("review") or {}
            if review.get("classroom"):
                allowed.add(review["classroom"])
            if not SAFE_NAME.match(name) or name not in allowed:
                raise RecordingNotFound("no such file in this recording")
            path = row.directory / name
            if not path.is_file():
                raise RecordingNotFound("file is missing")
        except SidecoachError as exc:
            return error_response(exc)
        content_type = _content_type(name)
        return web.FileResponse(path, headers={"Content-Type": content_type})


def _content_type(name: str) -> str:
    if name.endswith(".webm"):
        return "video/webm"
    if name.endswith(".mkv"):
        return "video/x-matroska"
    if name.endswith(".json"):
        return "application/json"
    return "application/x-ndjson" if name.endswith(".jsonl") else "application/octet-stream"


def setup_recording_api(app: web.Application, *, config: Config, catalog: RecordingCatalog) -> None:
    api = _RecordingApi(config, catalog)
    app.router.add_get("/api/recordings", api.list_recordings)
    app.router.add_get("/api/recordings/{recording_id}", api.get_manifest)
    app.router.add_get("/recordings/{recording_id}/{name}", api.get_file)
