"""Two nodes as on two boxes (a data directory each, one PostgreSQL, one
Redis): both see the same people, lessons, comments and recordings catalog.
A coach schedules on one box, the teacher finds it on the other; a comment
made through one box is read through the other."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from server.core.config import Config
from server.people.service import People
from server.recording.catalog import RecordingCatalog
from server.storage.audit import AuditLog
from server.storage.legacy import open_database
from server.storage.lessons import SqlSessionStore
from server.storage.sessions import LessonPeople, SessionSettings
from testkit.multinode import Deployment, deployment, redis_unavailable
from testkit.people import Browser, District, seed_district
from testkit.postgres import postgres_unavailable

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(redis_unavailable() is not None, reason=str(redis_unavailable())),
    pytest.mark.skipif(postgres_unavailable() is not None, reason=str(postgres_unavailable())),
]


@pytest.fixture
def boxes(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path, several_boxes=True) as dep:
        dep.start_nodes("a", "b")
        yield dep


@pytest.fixture
async def shared(boxes: Deployment, tmp_path: Path) -> AsyncIterator[tuple[People, District]]:
    url = boxes.extra_env["SIDECOACH_DATABASE_URL"]
    db = await open_database(tmp_path / "seed", url)
    store = SqlSessionStore(db)
    people = People(Config(), store, AuditLog(db))
    try:
        yield people, await seed_district(people)
    finally:
        await db.close()


async def test_two_boxes_share_people_lessons_comments_and_the_catalog(
    boxes: Deployment, shared: tuple[People, District]
) -> None:
    people, district = shared
    a, b = boxes.nodes["a"], boxes.nodes["b"]
    coach, teacher = Browser(a.url), Browser(b.url)
    try:
        assert (await coach.sign_in("rivera@district.example.org")).status == 303
        when = datetime.fromtimestamp(time.time() + 3600).strftime("%Y-%m-%dT%H:%M")
        r = await coach.post(
            "/lessons", {"teacher": district.teacher, "title": "Shared lesson", "when": when}
        )
        assert r.status == 303, await r.text()
        assert (await teacher.sign_in("okafor@district.example.org")).status == 303
        home = await (await teacher.get("/home")).text()
        assert "Shared lesson" in home and "with Ms Rivera" in home

        # a recording written on box A is in the catalog both boxes read
        lesson = await people.lessons.store.create(
            title="Recorded",
            teacher_name="Mr Okafor",
            settings=SessionSettings(),
            people=LessonPeople(teacher_id=district.teacher, school_id=district.school),
        )
        directory = a.data_dir / "recordings" / lesson.id / "rec-ab"
        directory.mkdir(parents=True)
        (directory / "manifest.json").write_text('{"state": "finalized", "tracks": []}')
        await RecordingCatalog(people.lessons.db).add("rec-ab", lesson.id, directory, time.time())
        listed = await (await coach.get("/api/lessons")).json()
        assert "rec-ab" in {r["id"] for x in listed["lessons"] for r in x["recordings"]}

        # a comment made through box B is read through box A
        r = await teacher.http.post(
            b.url + "/api/recordings/rec-ab/comments",
            json={"t": 1200, "text": "Look at this transition", "visibility": "team"},
            headers={"X-CSRF-Token": teacher.csrf},
        )
        assert r.status == 201, await r.text()
        seen = await (await coach.get("/api/recordings/rec-ab/comments")).json()
        assert [c["text"] for c in seen["comments"]] == ["Look at this transition"]
        # and the audit log is one too
        assert await people.audit.query(action="sign-in", person=district.teacher)
    finally:
        await coach.close()
        await teacher.close()
