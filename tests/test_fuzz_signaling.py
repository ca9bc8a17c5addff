"""Property-based fuzzing of the signaling edge against the real server
(Hypothesis, fixed example budget, derandomized, no example database):

* every socket.io event schema, with payloads near the schema and far
  from it, sent by an observer and a coach: every message gets a reply;
* raw Engine.IO/Socket.IO framing on fresh websockets: after any frame the
  socket still answers, or it is closed;

while a legitimate coach keeps receiving the teacher's video, and without
one traceback in the log. Hypothesis runs in a worker thread; the server,
the clients and the media run on the test's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.core.config import Limits
from server.signaling import schemas
from testkit.peers import wait_for
from testkit.rawsio import CLOSED, RawSocket
from testkit.server import LiveServer, make_config, running_server

pytestmark = [
    pytest.mark.integration,
    # Hypothesis warns when the global `random` state changes while it draws
    # an example: here that is the event loop's thread (aiortc, socket.io ids)
    # running beside the worker thread, not the strategies, which use none.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

T = TypeVar("T")

SCHEMA_EXAMPLES = 1000
FRAMING_EXAMPLES = 300
FUZZ_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
)

#: every client event the server knows, plus the reserved names
EVENTS = {
    "join": schemas.Join,
    "publish": schemas.Publish,
    "unpublish": schemas.Unpublish,
    "answer": schemas.Answer,
    "whisper-start": schemas.Empty,
    "whisper-stop": schemas.Empty,
    "cue": schemas.SendCue,
    "cue-ack": schemas.CueAck,
    "tally": schemas.Tally,
    "tally-undo": schemas.Empty,
    "note": schemas.Note,
    "recording-pause": schemas.Empty,
    "recording-resume": schemas.Empty,
}
RESERVED = ["connect", "disconnect", "connect_error"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
field_values = (
    json_values
    | st.sampled_from(["camera", "mic", "screen", "whisper", "audio", "video", "VP8", "#ff0000"])
    | st.text(min_size=0, max_size=200)
    | st.integers(min_value=-5, max_value=100)
)


def near_schema(model: type[schemas.Message]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with (some of) the model's own fields, plus maybe a stray one."""
    names = list(model.model_fields)
    fields = st.fixed_dictionaries({}, optional={n: field_values for n in names})
    extra = st.dictionaries(st.text(max_size=8), json_values, max_size=1)
    return st.tuples(fields, extra).map(lambda t: {**t[1], **t[0]})


messages = st.one_of(
    st.sampled_from(sorted(EVENTS)).flatmap(
        lambda e: st.tuples(st.just(e), near_schema(EVENTS[e]) | json_values)
    ),
    st.tuples(st.sampled_from(RESERVED), json_values),
    st.tuples(st.text(max_size=20), json_values),
).map(list)
extra_args = st.lists(json_values, max_size=2)

frame_prefixes = st.sampled_from(
    ["", "0", "1", "2", "3", "4", "5", "6", "2probe", "40", "41", "42", "43", "44", "45",
     "46", "47", "451-", "4999999999999-", "42/admin,", "4/x,", "b", "42[", "420", "43999"]
)  # fmt: skip
frames = st.one_of(
    st.tuples(frame_prefixes, st.text(max_size=60)).map("".join),
    st.tuples(frame_prefixes, json_values.map(repr)).map("".join),
    st.binary(max_size=64),
)


def run_in(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)


@pytest.fixture
async def fuzz_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    # a rate limit this high lets the fuzzed messages reach their handlers
    limits = Limits(messages_per_second=10_000.0, message_burst=10_000)
    async with running_server(make_config(tmp_path, limits=limits)) as server:
        yield server


@pytest.mark.slow
async def test_fuzzed_messages_and_frames(
    fuzz_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    session = await fuzz_server.create_session(recording=False)
    loop = asyncio.get_running_loop()
    async with (
        fuzz_server.classroom(session.id) as (_, coach),
        aiohttp.ClientSession() as http,
    ):
        video = coach.tracks(source="camera")[0]
        fuzzers = []
        for role in ("observer", "coach"):
            s = RawSocket(fuzz_server.url, http)
            await s.open()
            assert (await s.call("join", {"token": fuzz_server.invite(session.id, role)}))["ok"]
            fuzzers.append(s)
        frames_before = video.frames

        @settings(FUZZ_SETTINGS, max_examples=SCHEMA_EXAMPLES)
        @given(message=messages, extra=extra_args, who=st.sampled_from([0, 1]))
        def every_message_gets_a_reply(message: list[Any], extra: list[Any], who: int) -> None:
            s = fuzzers[who]
            reply = run_in(loop, s.call(*message, *extra))
            assert reply != CLOSED, message
            assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), reply
            if message[0] in RESERVED:
                assert reply["error"]["code"] == "reserved_event"
            if reply["ok"] is False:
                assert reply["error"]["code"] != "internal", (message, reply)

        @settings(FUZZ_SETTINGS, max_examples=FRAMING_EXAMPLES)
        @given(frame=frames)
        def every_frame_gets_an_answer_or_a_close(frame: str | bytes) -> None:
            async def probe() -> Any:
                s = RawSocket(fuzz_server.url, http)
                try:
                    await s.open()
                    await s.send(frame)
                    return await s.call("no-such-event", {})
                finally:
                    await s.close()

            reply = run_in(loop, probe())
            assert reply == CLOSED or reply["error"]["code"] in ("unknown_event", "unauthorized")

        await loop.run_in_executor(None, every_message_gets_a_reply)
        await loop.run_in_executor(None, every_frame_gets_an_answer_or_a_close)
        for s in fuzzers:
            await s.close()
        # the lesson went on for the legitimate coach throughout
        assert video.frames > frames_before + 10
        before = video.frames
        await wait_for(lambda: video.frames > before + 10)
    bad = [
        r.getMessage()
        for r in caplog.records
        if r.exc_info or "Traceback" in r.getMessage() or "never retrieved" in r.getMessage()
    ]
    assert not bad, bad[:3]
