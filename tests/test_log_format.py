"""Log lines carry the ids of what they are about, as text or as JSON."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from server.ops.log_format import configure_logging


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def log_lines(stream: io.StringIO, fmt: str, node: str = "") -> list[str]:
    configure_logging("INFO", fmt, node)
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    log = logging.LoggerAdapter(logging.getLogger("server.live.session"), {"session": "s1"})
    log.info("%s joined as %s", "p-1", "coach")
    producer = logging.LoggerAdapter(
        logging.getLogger("server.media.producer"), {"producer": "t-9", "participant": "p-1"}
    )
    producer.warning("producer closed")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("server.app").exception("failed")
    return stream.getvalue().splitlines()


def test_text_lines_end_with_their_ids(captured: io.StringIO) -> None:
    lines = log_lines(captured, "text", node="box-w1")
    assert lines[0].endswith("server.live.session: p-1 joined as coach [session=s1 node=box-w1]")
    assert lines[1].endswith("producer closed [participant=p-1 producer=t-9 node=box-w1]")
    assert lines[2].endswith("failed [node=box-w1]") and "ValueError: boom" in lines[-1]


def test_json_lines(captured: io.StringIO) -> None:
    lines = [json.loads(line) for line in log_lines(captured, "json")]
    assert lines[0]["message"] == "p-1 joined as coach" and lines[0]["session"] == "s1"
    assert lines[0]["level"] == "INFO" and lines[0]["logger"] == "server.live.session"
    assert lines[1]["producer"] == "t-9" and lines[1]["participant"] == "p-1"
    assert "node" not in lines[1]
    assert "ValueError: boom" in lines[2]["exception"]
