"""A lesson's measures over HTTP, by the one access policy.

* ``GET /api/recordings/{id}/measures`` (teacher, coach, admin:
  ``Item.MEASURES``): the status (pending, computing with progress 0..1,
  done, failed with a reason), the values and every definition;
* ``POST /api/recordings/{id}/measures/recompute`` (teacher, coach, admin:
  ``Action.RECOMPUTE_MEASURES``): compute them again (202).

Observers and debrief guests get 403. Numbers derived from whispers are
left out for a reader who may not read whispers. A recording finalized with
no measures yet (a restart, a crash's recovery, another node) has them
computed when first asked for. Review cannot correct a tally yet: after a
correction made some other way, ask for a recompute.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from server.access.policy import Action, Item
from server.access.views import measures_view
from server.core.errors import Forbidden
from server.http.recordings import RecordingAccess
from server.http.replies import json_response
from server.recording.catalog import RECORDING
from server.recording.errors import RecordingBusy
from server.recording.measure_runs import MeasureRuns
from server.recording.measures import DEFINITIONS, WHISPER_MEASURES

logger = logging.getLogger(__name__)


class MeasuresApi:
    def __init__(self, access: RecordingAccess, runs: MeasureRuns) -> None:
        self._access = access
        self._runs = runs

    async def get(self, request: web.Request) -> web.Response:
        row, _, reader = await self._access.recording(request)
        if not self._access.policy.can_read(reader, Item.MEASURES):
            raise Forbidden("measures are for the lesson's teacher and coaches")
        status = await asyncio.get_running_loop().run_in_executor(
            None, self._runs.status, row.id, row.directory
        )
        if status.get("status") == "pending" and row.state != RECORDING:
            self._runs.schedule(row.id, row.directory)
            status = {"status": "computing", "progress": 0.0}
        body = measures_view(self._access.policy, reader, status, DEFINITIONS, WHISPER_MEASURES)
        await self._access.audited(reader, "measures", row)
        return json_response({"recording": row.id, **body})

    async def recompute(self, request: web.Request) -> web.Response:
        row, _, reader = await self._access.recording(request)
        if not self._access.policy.may(reader, Action.RECOMPUTE_MEASURES):
            raise Forbidden("only the lesson's teacher and coaches can recompute its measures")
        if row.state == RECORDING:
            raise RecordingBusy("this recording is still being made")
        self._runs.schedule(row.id, row.directory)
        await self._access.audited(reader, "measures-recompute", row)
        return json_response({"recording": row.id, "status": "computing"}, status=202)


def setup_measures_api(app: web.Application, access: RecordingAccess, runs: MeasureRuns) -> None:
    api = MeasuresApi(access, runs)
    app.router.add_get("/api/recordings/{recording_id}/measures", api.get)
    app.router.add_post("/api/recordings/{recording_id}/measures/recompute", api.recompute)
