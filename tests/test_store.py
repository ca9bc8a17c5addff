"""The session store on the one database: sessions survive restarts, states
only move forward."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.app import open_store
from server.core.config import Config
from server.core.errors import InvalidMessage, SessionNotFound, SidecoachError
from server.core.roles import SessionState
from server.storage.database import DB_FILE_NAME
from server.storage.lessons import open_lessons
from server.storage.sessions import (
    DEFAULT_PROMPTS,
    DEFAULT_TALLIES,
    SessionSettings,
    SessionStore,
    ensure_demo_session,
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SessionStore]:
    s = await open_lessons(tmp_path)
    yield s
    await s.close()


async def test_create_then_get(store: SessionStore) -> None:
    rec = await store.create(
        title="  Grade 3 maths  ", teacher_name="Ms Rivera", settings=SessionSettings()
    )
    assert rec.title == "Grade 3 maths"
    assert rec.state is SessionState.SCHEDULED
    assert rec.started_at is None and rec.ended_at is None
    assert rec.settings.prompts == DEFAULT_PROMPTS
    assert rec.settings.tally_categories == DEFAULT_TALLIES
    assert await store.get(rec.id) == rec


async def test_unknown_session(store: SessionStore) -> None:
    with pytest.raises(SessionNotFound):
        await store.get("nope")
    with pytest.raises(SessionNotFound):
        await store.set_state("nope", SessionState.LIVE, at=1.0)


async def test_list_filters_by_state(store: SessionStore) -> None:
    a = await store.create(title="A", teacher_name="T", settings=SessionSettings())
    b = await store.create(title="B", teacher_name="T", settings=SessionSettings())
    c = await store.create(title="C", teacher_name="T", settings=SessionSettings())
    await store.set_state(b.id, SessionState.LIVE, at=10.0)
    await store.set_state(c.id, SessionState.ENDED, at=11.0)
    assert [r.id for r in await store.list()] == [a.id, b.id, c.id]
    assert [r.id for r in await store.list([SessionState.LIVE])] == [b.id]
    both = await store.list([SessionState.SCHEDULED, SessionState.ENDED])
    assert [r.id for r in both] == [a.id, c.id]
    assert await store.list([]) == []


async def test_state_transitions_stamp_times(store: SessionStore) -> None:
    rec = await store.create(title="A", teacher_name="T", settings=SessionSettings())
    live = await store.set_state(rec.id, SessionState.LIVE, at=100.0)
    assert (live.state, live.started_at, live.ended_at) == (SessionState.LIVE, 100.0, None)
    again = await store.set_state(rec.id, SessionState.LIVE, at=200.0)
    assert again == live  # same state again: no-op
    ended = await store.set_state(rec.id, SessionState.ENDED, at=300.0)
    assert (ended.state, ended.started_at, ended.ended_at) == (SessionState.ENDED, 100.0, 300.0)
    assert await store.get(rec.id) == ended


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([SessionState.LIVE], SessionState.SCHEDULED),
        ([SessionState.ENDED], SessionState.LIVE),
        ([SessionState.LIVE, SessionState.ENDED], SessionState.SCHEDULED),
    ],
)
async def test_illegal_transitions_change_nothing(
    store: SessionStore, path: list[SessionState], illegal: SessionState
) -> None:
    rec = await store.create(title="A", teacher_name="T", settings=SessionSettings())
    for i, state in enumerate(path):
        rec = await store.set_state(rec.id, state, at=float(i + 1))
    with pytest.raises(SidecoachError) as info:
        await store.set_state(rec.id, illegal, at=99.0)
    assert info.value.code == "invalid_state"
    assert await store.get(rec.id) == rec


async def test_scheduled_session_survives_restart(tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path / "data")
    settings = SessionSettings(
        recording=False, whisper_single=True, prompts=("Wait time",), tally_categories=("OTR",)
    )
    first = await open_store(config)
    rec = await first.create(
        title="Tomorrow", teacher_name="Mr Okafor", settings=settings, scheduled_for=2e9
    )
    await first.close()
    await first.close()  # idempotent
    assert (tmp_path / "data" / DB_FILE_NAME).exists()

    second = await open_store(config)
    try:
        again = await second.get(rec.id)
        assert again == rec
        assert again.settings == settings
        assert again.scheduled_for == 2e9
    finally:
        await second.close()


async def test_closed_store_refuses_calls(tmp_path: Path) -> None:
    s = await open_lessons(tmp_path)
    await s.close()
    with pytest.raises(SidecoachError):
        await s.list()


@pytest.mark.parametrize(
    ("title", "teacher"),
    [("", "T"), ("   ", "T"), ("x" * 121, "T"), ("A", ""), ("A", "y" * 121)],
)
async def test_invalid_names_refused(store: SessionStore, title: str, teacher: str) -> None:
    with pytest.raises(InvalidMessage):
        await store.create(title=title, teacher_name=teacher, settings=SessionSettings())
    assert await store.list() == []


@pytest.mark.parametrize(
    "settings",
    [
        SessionSettings(prompts=tuple(f"p{i}" for i in range(25))),
        SessionSettings(prompts=("",)),
        SessionSettings(prompts=("x" * 81,)),
        SessionSettings(tally_categories=tuple(f"t{i}" for i in range(13))),
        SessionSettings(tally_categories=("y" * 41,)),
    ],
)
async def test_invalid_settings_refused(store: SessionStore, settings: SessionSettings) -> None:
    with pytest.raises(InvalidMessage):
        await store.create(title="A", teacher_name="T", settings=settings)
    assert await store.list() == []


def test_settings_from_json() -> None:
    assert SessionSettings.from_json(None) == SessionSettings()
    s = SessionSettings.from_json({"recording": False, "prompts": ["Wait time"]})
    assert s == SessionSettings(recording=False, prompts=("Wait time",))
    assert SessionSettings.from_json(s.to_json()) == s
    bad_settings: list[object] = [[], {"recording": "yes"}, {"prompts": "x"}, {"colour": "red"}]
    for bad in bad_settings:
        with pytest.raises(InvalidMessage):
            SessionSettings.from_json(bad)


async def test_demo_session_is_reused_until_ended(store: SessionStore) -> None:
    first = await ensure_demo_session(store)
    assert first.title == "Demo lesson"
    assert await ensure_demo_session(store) == first
    await store.set_state(first.id, SessionState.ENDED, at=1.0)
    fresh = await ensure_demo_session(store)
    assert fresh.id != first.id
