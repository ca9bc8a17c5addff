"""HTTP routes of the reflect half: the lessons library, review comments,
exports and clips. Every answer is built for its reader by the access
policy (through ``RecordingAccess``) and every read is audited.

| route | who | does |
|---|---|---|
* GET /api/lessons (invite: its lesson; admin: all): past lessons, recordings
* GET /api/recordings/{id}/comments (reader): the comments it may read
* POST /api/recordings/{id}/comments (teacher, coach, member, admin): add one,
  a reply, or share one of your live notes
* GET /api/recordings/{id}/export/{name} (reader): timeline.json, cues.vtt,
  tallies.csv, rates.csv
* POST /api/recordings/{id}/clips (teacher, coach, admin): start a clip
* GET /api/recordings/{id}/clips[/{clip}] (reader): clips and their progress
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from server.access.invites import invite_ttl_s, invite_url
from server.access.policy import Action, Item, Reader, Visibility
from server.core.errors import Forbidden, InvalidMessage, NotFound
from server.core.roles import Role, SessionState
from server.core.tokens import MAX_NAME_CHARS, issue_invite
from server.http.login import has_bearer, signed_in
from server.http.recordings import RecordingAccess
from server.http.replies import json_response, read_model
from server.recording.catalog import RecordingRow
from server.recording.clips import CLIP_NAME, MAX_CLIP_MS, ClipMaker
from server.recording.comments import (
    MAX_COMMENT_CHARS,
    MAX_TAG_CHARS,
    Comment,
    CommentStore,
)
from server.recording.event_log import read_events
from server.recording.exports import rates_csv, tallies_csv, webvtt
from server.recording.manifest import EVENTS_FILE, read_manifest
from server.storage.sessions import MAX_TITLE_CHARS, SessionKind, SessionSettings, SessionStore

logger = logging.getLogger(__name__)

#: lessons one library answer lists (newest first)
MAX_LESSONS_LISTED = 200
#: the latest a comment can sit on the timeline (a lesson is shorter)
MAX_COMMENT_T_MS = 24 * 3600 * 1000
EXPORTS = {
    "timeline.json": "application/json",
    "cues.vtt": "text/vtt; charset=utf-8",
    "tallies.csv": "text/csv; charset=utf-8",
    "rates.csv": "text/csv; charset=utf-8",
}
#: told when a comment is added, so a debrief watching the recording shows it live
CommentHook = Callable[[str, Comment], Awaitable[None]]


class NewComment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    t: Annotated[int, Field(ge=0, le=MAX_COMMENT_T_MS)] | None = None
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] | None = None
    tag: Annotated[str, StringConstraints(max_length=MAX_TAG_CHARS)] | None = None
    visibility: Visibility = Visibility.TEAM
    parent: Annotated[str, StringConstraints(max_length=64)] | None = None
    #: share one of your live notes as a comment (its time and text)
    fromNote: Annotated[str, StringConstraints(max_length=64)] | None = None


#: members one debrief invites at creation
MAX_DEBRIEF_MEMBERS = 20


class NewDebrief(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: one named link each (a link holds a few seats at most)
    members: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                   max_length=MAX_NAME_CHARS)]] = Field(
        default_factory=list, max_length=MAX_DEBRIEF_MEMBERS
    )
    #: record the debrief itself (its owner can change this in the room)
    record: bool = False


class NewClip(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    from_ms: Annotated[int, Field(ge=0)]
    to_ms: Annotated[int, Field(ge=0)]


async def _nothing(recording_id: str, comment: Comment) -> None:
    return None


class ReviewApi:
    def __init__(
        self,
        access: RecordingAccess,
        store: SessionStore,
        comments: CommentStore,
        clips: ClipMaker,
        on_comment: CommentHook = _nothing,
    ) -> None:
        self._access = access
        self._store = store
        self._comments = comments
        self._clips = clips
        self._policy = access.policy
        self._limit = access.config.limits.max_message_bytes
        self.on_comment = on_comment
        #: ``GET /api/lessons`` for a signed-in person (``home.py``)
        self.person_lessons: Callable[[web.Request], Awaitable[web.Response]] | None = None

    # -- comments -----------------------------------------------------------------

    def visible(self, reader: Reader, comments: list[Comment]) -> list[dict[str, Any]]:
        return [
            c.to_client(mine=c.author_invite is not None and c.author_invite == reader.invite_id)
            for c in comments
            if self._policy.can_read_authored(
                reader, author_invite=c.author_invite, visibility=Visibility(c.visibility)
            )
        ]

    async def list_comments(self, request: web.Request) -> web.Response:
        row, _, reader = await self._access.recording(request)
        comments = self.visible(reader, await self._comments.for_recording(row.id))
        return json_response({"recording": row.id, "comments": comments})

    async def add_comment(self, request: web.Request) -> web.Response:
        row, manifest, reader = await self._access.recording(request)
        if not self._policy.may(reader, Action.COMMENT):
            raise Forbidden("your role can watch this lesson but not comment on it")
        msg = await read_model(request, NewComment, self._limit)
        comment = await self._add(row, manifest, reader, msg)
        await self.on_comment(row.id, comment)
        return json_response({"comment": comment.to_client(mine=True)}, status=201)

    async def _add(
        self, row: RecordingRow, manifest: dict[str, Any], reader: Reader, msg: NewComment
    ) -> Comment:
        t, text, visibility, from_note = msg.t, msg.text, msg.visibility, None
        if msg.fromNote is not None:
            note = await self._note(row, reader, msg.fromNote)
            t, text, from_note = int(note["t"]), str(note["text"]), msg.fromNote
        if t is None or not text:
            raise InvalidMessage("a comment needs a time (t) and some text")
        if len(text) > MAX_COMMENT_CHARS:
            raise InvalidMessage(f"a comment is at most {MAX_COMMENT_CHARS} characters")
        if msg.parent is not None:
            parent = await self._comments.get(msg.parent)
            if (
                parent is None
                or parent.recording_id != row.id
                or not self.visible(reader, [parent])
            ):
                raise NotFound("no such comment to reply to")
            # a reply lives in its thread, seen by whoever sees the thread
            visibility = Visibility(parent.visibility)
            msg_parent = parent.parent_id or parent.id
        else:
            msg_parent = None
        tags = set(manifest.get("tally_categories") or []) | set(manifest.get("prompts") or [])
        if msg.tag and msg.tag not in tags:
            raise InvalidMessage("a tag must be one of the lesson's tally categories or prompts")
        role = "admin" if reader.is_admin else str(reader.role)
        return await self._comments.add(
            recording_id=row.id,
            t_ms=t,
            text=text,
            visibility=str(visibility),
            author_invite=reader.invite_id,
            author_name=reader.name or role,
            author_role=role,
            parent_id=msg_parent,
            tag=msg.tag or None,
            from_note=from_note,
        )

    async def _note(self, row: RecordingRow, reader: Reader, note_id: str) -> dict[str, Any]:
        events = await asyncio.get_running_loop().run_in_executor(
            None, read_events, row.directory / EVENTS_FILE
        )
        for e in events:
            if e.get("type") == "note" and e.get("note") == note_id:
                if reader.invite_id is None or e.get("author") != reader.invite_id:
                    raise Forbidden("only its author can share a note")
                return e
        raise NotFound("no such note in this lesson")

    # -- exports --------------------------------------------------------------------

    async def export(self, request: web.Request) -> web.StreamResponse:
        row, manifest, reader = await self._access.recording(request)
        name = request.match_info["name"]
        if name not in EXPORTS:
            raise NotFound(f"exports: {', '.join(EXPORTS)}")
        timeline = await self._access.timeline(row, manifest, reader)
        comments = self.visible(reader, await self._comments.for_recording(row.id))
        offset = int((manifest.get("review") or {}).get("offset_ms") or 0)
        if name == "cues.vtt":
            body = webvtt(timeline, comments, offset)
        elif name == "tallies.csv":
            body = tallies_csv(timeline)
        elif name == "rates.csv":
            body = rates_csv(timeline)
        else:
            body = json.dumps(
                {"recording": row.id, "title": manifest.get("title"), "offset_ms": offset,
                 "timeline": timeline, "comments": comments},
                indent=2,
            )
        await self._access.audited(reader, "export", row, item=name, bytes_read=len(body))
        stem = f"{manifest.get('title') or 'lesson'}"[:40].replace('"', "")
        return web.Response(
            text=body,
            headers={
                "Content-Type": EXPORTS[name],
                "Content-Disposition": f'attachment; filename="{stem} - {name}"',
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            },
        )

    # -- clips ------------------------------------------------------------------------

    async def start_clip(self, request: web.Request) -> web.Response:
        row, manifest, reader = await self._access.recording(request)
        if not self._policy.may(reader, Action.MAKE_CLIP):
            raise Forbidden("the teacher or a coach can make clips")
        msg = await read_model(request, NewClip, self._limit)
        review = manifest.get("review") or {}
        source = review.get("classroom")
        if not source:
            raise NotFound("this recording has no classroom video to clip")
        if not 0 < msg.to_ms - msg.from_ms <= MAX_CLIP_MS:
            raise InvalidMessage(f"a clip is 1 ms to {MAX_CLIP_MS // 60000} minutes long")
        offset = int(review.get("offset_ms") or 0)
        job = self._clips.start(
            row.id, row.directory, str(source), msg.from_ms - offset, msg.to_ms - offset
        )
        await self._access.audited(reader, "clip", row, item=job.file)
        return json_response({"clip": job.to_client()}, status=202)

    async def list_clips(self, request: web.Request) -> web.Response:
        row, _, reader = await self._access.recording(request)
        if not self._policy.can_read(reader, Item.CLASSROOM):
            raise Forbidden("clips are of the classroom video")
        jobs = {j.file: j.to_client() for j in self._clips.for_recording(row.id)}
        on_disk = await asyncio.get_running_loop().run_in_executor(
            None, lambda: sorted(p.name for p in row.directory.iterdir() if CLIP_NAME.match(p.name))
        )
        for name in on_disk:
            jobs.setdefault(name, {"file": name, "state": "done", "progress": 1.0})
        wanted = request.match_info.get("clip_id")
        if wanted is not None:
            found = [j for j in jobs.values() if j.get("id") == wanted]
            if not found:
                raise NotFound("no such clip")
            return json_response({"clip": found[0]})
        return json_response({"clips": list(jobs.values())})

    # -- debriefs -------------------------------------------------------------------------

    async def start_debrief(self, request: web.Request) -> web.Response:
        """A debrief room for this recording: its owner's link (the teacher,
        or an admin) and one link per member named."""
        row, manifest, reader = await self._access.recording(request)
        if not self._policy.may(reader, Action.START_DEBRIEF):
            raise Forbidden("the teacher of this lesson (or an admin) starts its debriefs")
        msg = await read_model(request, NewDebrief, self._limit)
        lesson = await self._store.get(row.session_id)
        record = await self._store.create(
            title=f"Debrief: {lesson.title}"[:MAX_TITLE_CHARS],
            teacher_name=lesson.teacher_name,
            settings=SessionSettings(recording=msg.record),
            kind=SessionKind.DEBRIEF,
            recording_id=row.id,
        )
        config = self._access.config
        ttl = invite_ttl_s(config, record)
        owner_name = (reader.name if not reader.is_admin else None) or lesson.teacher_name
        owner = issue_invite(
            config.secret, record.id, Role.MEMBER, ttl_s=ttl, name=owner_name, owner=True
        )
        members = []
        for name in msg.members:
            token = issue_invite(config.secret, record.id, Role.MEMBER, ttl_s=ttl, name=name)
            members.append({"name": name, "url": invite_url(config, token)})
        await self._access.audited(reader, "debrief", row, item=record.id)
        logger.info("debrief %s of recording %s started", record.id, row.id)
        body = {
            "session": record.to_json(),
            "owner": {"name": owner_name, "url": invite_url(config, owner)},
            "members": members,
        }
        return json_response(body, status=201)

    # -- the library ----------------------------------------------------------------------

    async def lessons(self, request: web.Request) -> web.Response:
        if self.person_lessons is not None and not has_bearer(request) and signed_in(request):
            return await self.person_lessons(request)
        reader, session_id = self._access.reader(request)
        if session_id is not None:
            records = [await self._store.get(session_id)]
        else:
            records = await self._store.list()
        rows = await self._access.catalog.recordings(session_id)
        by_session: dict[str, list[RecordingRow]] = {}
        for row in rows:
            by_session.setdefault(row.session_id, []).append(row)
        lessons = []
        for record in sorted(records, key=lambda r: r.started_at or r.created_at, reverse=True):
            recs = by_session.get(record.id, [])
            if record.kind == SessionKind.DEBRIEF and not recs:
                continue  # listed under the lesson it watches
            if record.state != SessionState.ENDED and not recs:
                continue
            lessons.append(await self._lesson(reader, record, recs))
            if len(lessons) >= MAX_LESSONS_LISTED:
                break
        return json_response({"lessons": lessons, "admin": reader.is_admin})

    async def _lesson(
        self, reader: Reader, record: Any, recs: list[RecordingRow]
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        recordings, coaches = [], set()
        for row in recs:
            manifest = await loop.run_in_executor(None, read_manifest, row.directory)
            review = manifest.get("review") or {}
            if self._policy.can_read(reader, Item.PRESENCE):
                coaches |= {
                    p.get("name", "")
                    for p in (manifest.get("participants") or {}).values()
                    if p.get("role") == "coach"
                }
            recordings.append(
                {
                    **row.to_json(),
                    "thumbnail": review.get("thumbnail")
                    if self._policy.can_read(reader, Item.CLASSROOM)
                    else None,
                }
            )
        debriefs = [
            {"id": d.id, "title": d.title, "state": str(d.state), "recording": d.recording_id}
            for d in await self._debriefs_of({r["id"] for r in recordings})
        ]
        return {
            "session": record.to_json(),
            "recordings": recordings,
            "coaches": sorted(c for c in coaches if c),
            "debriefs": debriefs,
        }

    async def _debriefs_of(self, recording_ids: set[str]) -> list[Any]:
        if not recording_ids:
            return []
        return [
            r
            for r in await self._store.list()
            if r.kind == SessionKind.DEBRIEF and r.recording_id in recording_ids
        ]


def setup_review_api(app: web.Application, api: ReviewApi) -> None:
    app.router.add_get("/api/lessons", api.lessons)
    app.router.add_get("/api/recordings/{recording_id}/comments", api.list_comments)
    app.router.add_post("/api/recordings/{recording_id}/comments", api.add_comment)
    app.router.add_get("/api/recordings/{recording_id}/export/{name}", api.export)
    app.router.add_post("/api/recordings/{recording_id}/clips", api.start_clip)
    app.router.add_post("/api/recordings/{recording_id}/debriefs", api.start_debrief)
    app.router.add_get("/api/recordings/{recording_id}/clips", api.list_clips)
    app.router.add_get("/api/recordings/{recording_id}/clips/{clip_id}", api.list_clips)
