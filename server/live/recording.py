"""The recording of one live session, kept apart from ``Session``.

The teacher is in charge: before going live the page shows whether the
lesson will be recorded (the session's plan, which the teacher may switch
off or on; every decision is stored with the session). Recording starts when
the teacher goes live, not when someone joins; the teacher can pause and
resume; closing the session finalizes it at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from server.core.clock import SessionClock
from server.core.config import Config
from server.core.errors import Conflict
from server.core.tasks import TaskOwner
from server.media.router import Router
from server.recording.catalog import RecordingCatalog
from server.recording.recorder import Recorder, RecordingState, new_recording_id
from server.storage.sessions import RecordingDecision, SessionRecord, SessionStore

logger = logging.getLogger(__name__)

#: how often the recorded cameras' keyframe age is looked at, and how long
#: before it reaches the interval a keyframe is asked for
KEYFRAME_TICK_S = 0.25
KEYFRAME_LEAD_S = 1.0


class NotRecording(Conflict):
    code = "not_recording"


class NotPaused(Conflict):
    code = "not_paused"


class RecordingHost(Protocol):
    """What the recording needs from its session."""

    def log_event(self, event_type: str, **data: Any) -> dict[str, Any]: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...

    def recording_changed(self) -> None:
        """Tell everyone the recording's state changed."""
        ...

    def present_events(self) -> list[dict[str, Any]]:
        """The join events of everyone here now, the track-added events of
        every track flowing, and the coaching events before the recording (a
        recording starting mid-session begins with who is present, what they
        publish and what happened before it)."""
        ...


class RecordingParts(Protocol):
    """Where a recording continues when its session moves to another node
    (``server/cluster/series.py``): the part a node was writing when it died
    or drained is continued by the next node as the series' next part."""

    async def started(self, session_id: str, series: str, part: int, recording_id: str) -> None:
        """A part is being written (here)."""
        ...

    async def stopped(self, session_id: str) -> None:
        """The teacher switched recording off: the next recording is a new one."""
        ...


class SessionRecording:
    def __init__(
        self,
        record: SessionRecord,
        *,
        config: Config,
        store: SessionStore,
        catalog: RecordingCatalog,
        clock: SessionClock,
        router: Router,
        host: RecordingHost,
    ) -> None:
        self._record = record
        self._config = config
        self._store = store
        self._catalog = catalog
        self._clock = clock
        self._router = router
        self._host = host
        self.planned = record.recording_planned
        self.recorder: Recorder | None = None
        #: ids of every recording this session made (a plan switched off and
        #: on again makes a second one)
        self.recording_ids: list[str] = []
        self._teacher_live = False
        self._closed = False
        #: several nodes: where parts are announced, and which (series, part)
        #: the next recording continues (None: a new recording)
        self._parts: RecordingParts | None = None
        self._continues: tuple[str, int] | None = None
        #: the node writing this session's recordings (catalog, manifest)
        self.node = ""
        self._log = logging.LoggerAdapter(logger, {"session": record.id})
        self._tasks = TaskOwner(f"recording {record.id}")

    # -- state -------------------------------------------------------------

    @property
    def state(self) -> str:
        if self.recorder is not None and not self.recorder.closed:
            return str(self.recorder.state)
        return "ended" if self._closed else str(RecordingState.OFF)

    def to_client(self) -> dict[str, Any]:
        """What every page shows: the state, whether it is planned, why it
        stopped, and how long recordings are kept."""
        recorder = self.recorder
        return {
            "state": self.state,
            "planned": self.planned,
            "reason": recorder.error if recorder is not None else None,
            "recordingId": recorder.recording_id if recorder is not None else None,
            "retentionDays": self._config.retention_days,
        }

    # -- the teacher's decisions ---------------------------------------------

    def teacher_went_live(self) -> None:
        """The teacher's first classroom track is flowing: start recording
        if that is the plan."""
        self._teacher_live = True
        if self.planned:
            self._start()

    async def set_plan(self, recording: bool, *, by_role: str, by_name: str) -> None:
        """Record this lesson or not, from now on; stored with the session."""
        decision = RecordingDecision(recording, by_role, by_name, time.time())
        self._record = await self._store.add_recording_decision(self._record.id, decision)
        changed = recording != self.planned
        self.planned = recording
        self._host.log_event("recording-plan", recording=recording, by_role=by_role)
        if recording and self._teacher_live:
            self._start()
        elif not recording and self.recorder is not None and not self.recorder.closed:
            await self._stop()
            if self._parts is not None:
                await self._parts.stopped(self._record.id)
        if changed or recording:
            self._host.recording_changed()

    def pause(self) -> None:
        recorder = self.recorder
        if recorder is None or recorder.closed or recorder.state != RecordingState.RECORDING:
            raise NotRecording("recording is not running")
        event = self._host.log_event("recording-pause", recording=recorder.recording_id)
        recorder.pause(event["t"])
        self._host.recording_changed()

    def resume(self) -> None:
        recorder = self.recorder
        if recorder is None or recorder.closed or recorder.state != RecordingState.PAUSED:
            raise NotPaused("recording is not paused")
        event = self._host.log_event("recording-resume", recording=recorder.recording_id)
        recorder.resume(event["t"])
        self._host.recording_changed()

    def continue_series(
        self, parts: RecordingParts, node: str, continues: tuple[str, int] | None
    ) -> None:
        """Several nodes: announce parts to ``parts``; the next recording
        continues series ``continues`` = (series id, part number) if given."""
        self._parts, self.node, self._continues = parts, node, continues

    # -- the recorder ----------------------------------------------------------

    def log(self, event: dict[str, Any]) -> None:
        if self.recorder is not None:
            self.recorder.log(event)

    def _start(self) -> None:
        if self._closed or (self.recorder is not None and not self.recorder.closed):
            return
        recording_id = new_recording_id()
        directory = self._config.recordings_dir / self._record.id / recording_id
        series, part = self._continues or (recording_id, 1)
        self._continues = None  # a later recording of this session is a new one
        parts = {"series": series, "part": part, "node": self.node} if self._parts else {}
        recorder = Recorder(
            session_id=self._record.id,
            directory=directory,
            clock=self._clock,
            on_error=self._failed,
            session_info={
                "session": self._record.id,
                "title": self._record.title,
                "teacher_name": self._record.teacher_name,
                "clock_wall_start": self._clock.wall_start,
                "tally_categories": list(self._record.settings.tally_categories),
                "prompts": list(self._record.settings.prompts),
                **parts,
            },
            max_backlog_bytes=self._config.limits.recording_backlog_bytes,
            media_gap_ms=self._config.limits.media_gap_ms,
        )
        self.recorder = recorder
        self.recording_ids.append(recorder.recording_id)
        for event in self._host.present_events():
            recorder.log(event)
        self._host.spawn(
            self._catalog.add(
                recorder.recording_id,
                self._record.id,
                directory,
                time.time(),
                series=series,
                part=part,
                node=self.node,
            )
        )
        if self._parts is not None:
            self._host.spawn(self._parts.started(self._record.id, series, part, recording_id))
        self._host.log_event("recording-started", recording=recorder.recording_id)
        self._router.add_endpoint(recorder)
        self._tasks.spawn(
            self._ask_keyframes(recorder), name=f"keyframes {recorder.recording_id}"
        )
        self._log.info("recording %s started", recorder.recording_id)
        self._host.recording_changed()

    async def _ask_keyframes(self, recorder: Recorder) -> None:
        """A keyframe of each recorded camera at least every
        ``recording_keyframe_interval_s``: browsers and aiortc send one only
        when asked (or every ~100 s), so without this a clip could start
        minutes early. A camera is asked ``KEYFRAME_LEAD_S`` before its last
        keyframe is that old (the time a request takes to come back as a
        keyframe); a keyframe sent for another reason (a join, a layer
        switch) counts too."""
        interval = self._config.limits.recording_keyframe_interval_s
        tick = min(KEYFRAME_TICK_S, interval / 2)
        older_than = max(tick, interval - KEYFRAME_LEAD_S)
        while not recorder.closed:
            await asyncio.sleep(tick)
            recorder.request_keyframes(older_than)

    def _failed(self, reason: str) -> None:
        self._host.log_event("recording-error", reason=reason)
        self._host.recording_changed()

    async def _stop(self) -> None:
        recorder = self.recorder
        if recorder is None or recorder.closed:
            return
        self._host.log_event("recording-stopped", recording=recorder.recording_id)
        await self._router.remove_endpoint(recorder.participant_id)
        manifest = await recorder.close()
        await self._catalog.finish(recorder.recording_id, manifest)
        self._log.info("recording %s finalized", recorder.recording_id)

    async def close(self) -> None:
        """Finalize what is being recorded (the session is closing)."""
        if self._closed:
            return
        await self._stop()
        self._closed = True
        await self._tasks.aclose()
