"""The Recorder: just another consumer endpoint of the Router.

It gets a Consumer of every classroom track and every whisper (the routing
policy's ``recorder`` role), turns their packets into frames, and writes
each track to its own file on the session clock, beside the event log.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from pathlib import Path
from typing import Any

from aiortc.rtp import RtpPacket

from server.core.clock import SessionClock
from server.media.consumer import Consumer, PacketWriter
from server.media.policy import RECORDER_ROLE, Source
from server.recording.event_log import EventLogWriter
from server.recording.frames import Frame, FrameAssembler
from server.recording.manifest import (
    EVENTS_FILE,
    ManifestState,
    TrackMeta,
    append_track_close,
    append_track_meta,
    write_manifest,
)
from server.recording.track_writer import Backlog, TrackWriter, container_for

logger = logging.getLogger(__name__)

RECORDER_PARTICIPANT = "recorder"


class RecordingState(StrEnum):
    RECORDING = "recording"
    PAUSED = "paused"
    OFF = "off"
    ERROR = "error"


def new_recording_id() -> str:
    return time.strftime("r%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)


#: sources whose silence is a gap; a screen share may legitimately send
#: nothing while the screen does not change
GAP_SOURCES = frozenset({Source.CAMERA, Source.MIC, Source.WHISPER})

#: a track's RTP clock is tied to the session clock by the smallest delay
#: seen over its first SETTLE_MS of media (one late first packet must not
#: shift the whole track); frames wait in memory that long, once
SETTLE_MS = 1000


class RecordedTrack:
    """PacketWriter for one Consumer: packets → frames → TrackWriter."""

    def __init__(
        self, recorder: Recorder, consumer: Consumer, meta: TrackMeta, writer: TrackWriter
    ) -> None:
        self._recorder = recorder
        self.consumer = consumer
        self.meta = meta
        self.writer = writer
        self._video = consumer.producer.kind == "video"
        self._clock_rate = consumer.producer.codec.clock_rate
        self._assembler = FrameAssembler(consumer.producer.codec.mime_type)
        self._ext_ts: int | None = None
        self._last_ts = 0
        self._offset_ms: float | None = None
        self._min_delay_ms = float("inf")
        self._settling: list[tuple[Frame, float]] = []
        self._need_keyframe = self._video
        #: monotonic time the last keyframe was written (None: none yet)
        self.last_keyframe_at: float | None = None
        self.frames_received = 0
        self.frames_paused = 0
        #: session time of the last packet, and the producer's pause count then
        self._last_packet_ms: int | None = None
        self._pauses = 0
        self.watches_gaps = consumer.producer.info.source in GAP_SOURCES
        self.gaps: list[tuple[int, int]] = []

    @property
    def waits_for_keyframe(self) -> bool:
        """Dropping frames until a keyframe (after a pause): it asks itself."""
        return self._need_keyframe and self.last_keyframe_at is not None

    @property
    def ready(self) -> bool:
        return self.writer.accepting and not self.writer.closed

    def check_gap(self, now_ms: int) -> None:
        """Mark a gap when packets stopped for longer than the recorder's
        limit on a track that was flowing, unless push-to-talk paused the
        producer meanwhile (silence on purpose)."""
        producer = self.consumer.producer
        last = self._last_packet_ms
        if (
            last is not None
            and now_ms - last > self._recorder.media_gap_ms
            and producer.pauses == self._pauses
            and not producer.paused
        ):
            self.gaps.append((last, now_ms))
            self._recorder.media_gap(self, last, now_ms)

    def send(self, packet: RtpPacket, sequence_number: int, timestamp: int) -> bool:
        if self.writer.closed or not self.writer.accepting:
            return False
        if self.watches_gaps:
            now_ms = self._recorder.clock.now_ms()
            self.check_gap(now_ms)
            self._last_packet_ms, self._pauses = now_ms, self.consumer.producer.pauses
        # the Consumer's timestamps: the publisher's timing, continued across
        # a simulcast layer switch
        frame = self._assembler.push(packet, sequence_number, timestamp)
        if frame is None:
            return True
        if self._ext_ts is None:
            self._ext_ts = 0
        else:
            self._ext_ts += (frame.rtp_timestamp - self._last_ts + 0x80000000) % 0x100000000
            self._ext_ts -= 0x80000000
        self._last_ts = frame.rtp_timestamp
        media_ms = self._ext_ts * 1000 / self._clock_rate
        if self._offset_ms is None:
            self._min_delay_ms = min(self._min_delay_ms, self._recorder.clock.now_ms() - media_ms)
            self._settling.append((frame, media_ms))
            if media_ms - self._settling[0][1] >= SETTLE_MS:
                self.settle()
        else:
            self._write(frame, round(media_ms + self._offset_ms))
        return True

    def _write(self, frame: Frame, pts_ms: int) -> None:
        # Pause and resume go by when a frame was captured, not when it
        # arrived: under load, packets captured during a pause can still be
        # waiting in the socket when the resume is handled.
        if self._recorder.paused_at(pts_ms):
            self.frames_paused += 1
            self._need_keyframe = self._video
            return
        if self._need_keyframe:
            if not frame.keyframe:
                self.consumer.producer.request_keyframe()
                return
            self._need_keyframe = False
        if frame.keyframe:
            self.last_keyframe_at = time.monotonic()
        self.frames_received += 1
        self.writer.write(frame, pts_ms)

    def settle(self) -> None:
        """Fix the track's offset and write what waited for it."""
        if self._offset_ms is None and self._settling:
            self._offset_ms = self._min_delay_ms
            for frame, media_ms in self._settling:
                self._write(frame, round(media_ms + self._offset_ms))
            self._settling = []

    def set_sender_report_mapping(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        pass


class Recorder:
    """ConsumerEndpoint writing one Recording of one session."""

    def __init__(
        self,
        *,
        session_id: str,
        directory: Path,
        clock: SessionClock,
        on_error: Callable[[str], None],
        session_info: dict[str, Any],
        max_backlog_bytes: int,
        media_gap_ms: int = 1000,
    ) -> None:
        self.session_id = session_id
        self.recording_id = directory.name
        self.directory = directory
        self.clock = clock
        self._on_error = on_error
        self.state = RecordingState.RECORDING
        self.error: str | None = None
        self.tracks: dict[str, RecordedTrack] = {}
        #: session-clock spans [start, end) when the teacher paused; end is
        #: None while paused
        self.paused_spans: list[list[int | None]] = []
        #: silence longer than this on a flowing track is a ``media-gap``
        self.media_gap_ms = media_gap_ms
        self.backlog = Backlog(max_backlog_bytes, self._backlog_full)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"rec-{session_id}")
        self._loop = asyncio.get_running_loop()
        self._session_info = session_info
        self.started_at = time.time()
        self.closed = False
        self._log = logging.LoggerAdapter(logger, {"session": session_id})
        directory.mkdir(parents=True, exist_ok=True)
        self.events = EventLogWriter(
            directory / EVENTS_FILE, self._executor, self._fail_from_thread
        )
        self._submit(write_manifest, directory, self._manifest(ManifestState.RECORDING))

    # -- ConsumerEndpoint -----------------------------------------------

    @property
    def participant_id(self) -> str:
        return RECORDER_PARTICIPANT

    @property
    def role(self) -> str:
        return RECORDER_ROLE

    def open_writer(self, consumer: Consumer) -> PacketWriter:
        info = consumer.producer.info
        mime = consumer.producer.codec.mime_type
        _, ext = container_for(mime)
        index = len(self.tracks) + 1
        meta = TrackMeta(
            file=f"{index:02d}-{info.source}-{info.participant_id}{ext}",
            producer=info.producer_id,
            participant=info.participant_id,
            role=info.role,
            source=str(info.source),
            kind=info.kind,
            codec=mime,
            clock_rate=consumer.producer.codec.clock_rate,
            opened_ms=self.clock.now_ms(),
        )
        writer = TrackWriter(
            self.directory / meta.file, mime, self._executor, self._fail_from_thread, self.backlog
        )
        track = RecordedTrack(self, consumer, meta, writer)
        self.tracks[consumer.id] = track
        self._submit(append_track_meta, self.directory, meta)
        self._log.info("recording %s to %s", info.producer_id, meta.file)
        return track

    def release_writer(self, consumer: Consumer) -> None:
        track = self.tracks.get(consumer.id)
        if track is not None and not track.writer.closed:
            self._close_track(track)

    def _close_track(self, track: RecordedTrack) -> None:
        if track.watches_gaps and not self.closed:
            track.check_gap(self.clock.now_ms())  # it went silent before it closed
        track.settle()
        track.meta.closed_ms = self.clock.now_ms()
        track.writer.close_in_executor()
        self._submit(append_track_close, self.directory, track.meta.file, track.meta.closed_ms)

    # -- control --------------------------------------------------------

    def log(self, event: dict[str, Any]) -> None:
        if not self.closed:
            self.events.append(event)

    def media_gap(self, track: RecordedTrack, start_ms: int, end_ms: int) -> None:
        """A track's media stopped from ``start_ms`` to ``end_ms`` (session
        clock): a ``media-gap`` on the timeline."""
        info = track.consumer.producer.info
        self._log.info(
            "media gap on %s (%s of %s): %d ms", info.producer_id, info.source,
            info.participant_id, end_ms - start_ms,
        )  # fmt: skip
        self.log({
            "t": end_ms, "type": "media-gap", "start": start_ms, "end": end_ms,
            "source": str(info.source), "producer": info.producer_id,
            "participant": info.participant_id, "duration_ms": end_ms - start_ms,
        })  # fmt: skip

    def paused_at(self, t_ms: int) -> bool:
        """Whether the recording was paused at session time ``t_ms``."""
        for start, end in reversed(self.paused_spans):
            assert start is not None
            if t_ms >= start:
                return end is None or t_ms < end
        return False

    def pause(self, at_ms: int) -> bool:
        if self.state != RecordingState.RECORDING:
            return False
        self.state = RecordingState.PAUSED
        self.paused_spans.append([at_ms, None])
        return True

    def resume(self, at_ms: int) -> bool:
        if self.state != RecordingState.PAUSED:
            return False
        self.paused_spans[-1][1] = max(at_ms, self.paused_spans[-1][0] or 0)
        self.state = RecordingState.RECORDING
        for track in self.tracks.values():
            if track.consumer.producer.kind == "video" and not track.writer.closed:
                track.consumer.producer.request_keyframe()
        return True

    def request_keyframes(self, older_than_s: float = 0.0) -> int:
        """Ask every recorded video whose last keyframe is older than
        ``older_than_s`` for a keyframe of the layer recorded (while
        recording): what makes clips start where asked and seeks land fast.
        Returns how many were asked."""
        if self.closed or self.state != RecordingState.RECORDING:
            return 0
        asked = 0
        now = time.monotonic()
        for track in self.tracks.values():
            consumer = track.consumer
            last = track.last_keyframe_at
            if track.waits_for_keyframe or (last is not None and now - last < older_than_s):
                continue  # asks by itself, or had one lately
            if consumer.producer.kind == "video" and not track.writer.closed:
                layer = consumer.current_layer
                consumer.producer.request_keyframe(
                    layer if layer is not None else consumer.chooser.target
                )
                asked += 1
        return asked

    def _fail_from_thread(self, exc: BaseException) -> None:
        self._loop.call_soon_threadsafe(self._fail, f"{type(exc).__name__}: {exc}")

    def _backlog_full(self, waiting: int) -> None:
        self._loop.call_soon_threadsafe(
            self._fail, f"the disk is not keeping up ({waiting // 1_000_000} MB waiting)"
        )

    def _fail(self, reason: str) -> None:
        if self.state == RecordingState.ERROR or self.closed:
            return
        self.error = reason
        self.state = RecordingState.ERROR
        self._log.error("recording stopped: %s", reason)
        for track in self.tracks.values():
            track.writer.refuse()  # queue nothing more; the files stay as written
        self._on_error(reason)

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        def run() -> None:
            try:
                fn(*args)
            except Exception as exc:  # any failure is the recording's visible error
                self._fail_from_thread(exc)

        self._executor.submit(run)

    # -- finishing --------------------------------------------------------

    def _manifest(self, state: ManifestState) -> dict[str, Any]:
        return {
            "recording": self.recording_id,
            "state": str(state),
            "started_at": self.started_at,
            **self._session_info,
        }

    async def close(self) -> dict[str, Any]:
        """Close every track, finalize the manifest; returns it."""
        if self.closed:
            return {}
        self.closed = True
        for track in self.tracks.values():
            if not track.writer.closed:
                self._close_track(track)
        self.events.close_in_executor()
        from server.recording.finalize import finalize_directory

        manifest = await self._loop.run_in_executor(
            self._executor,
            finalize_directory,
            self.directory,
            {
                "ended_at": time.time(),
                "error": self.error,
                "frames_received": {t.meta.file: t.frames_received for t in self.tracks.values()},
                "paused_spans": self.paused_spans,
            },
        )
        self._executor.shutdown(wait=True)
        self._log.info("recording %s closed", self.recording_id)
        return manifest
