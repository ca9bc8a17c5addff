"""Log lines with their context: the session, participant and producer ids
that ``logging.LoggerAdapter`` puts on a record, and this node's id in a
deployment of several. Text (``... [session=s1 participant=p-2]``) or JSON,
one object per line (``--log-format json``)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

#: record attributes shown as context, in this order
CONTEXT_KEYS = ("session", "participant", "producer", "node")

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class _NodeFilter(logging.Filter):
    def __init__(self, node: str) -> None:
        super().__init__()
        self._node = node

    def filter(self, record: logging.LogRecord) -> bool:
        if self._node and not hasattr(record, "node"):
            record.node = self._node
        return True


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {k: getattr(record, k) for k in CONTEXT_KEYS if getattr(record, k, None) is not None}


class ContextTextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = _context(record)
        if not context:
            return line
        tail = " ".join(f"{k}={v}" for k, v in context.items())
        first, sep, rest = line.partition("\n")  # keep a traceback below the line
        return f"{first} [{tail}]{sep}{rest}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


#: libraries whose lines below this level say nothing an operator needs:
#: alembic announces its plugins and each migration step at INFO on every
#: start (a one-line configuration error would come after 7 of them)
QUIET_LIBRARIES = {"alembic": logging.WARNING}


def configure_logging(level: str, fmt: str = "text", node: str = "") -> None:
    """The root logger: ``level``, ``fmt`` "text" or "json", every line
    naming ``node`` when given (several nodes share a log collector)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else ContextTextFormatter())
    handler.addFilter(_NodeFilter(node))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name, floor in QUIET_LIBRARIES.items():
        library = logging.getLogger(name)
        library.setLevel(max(floor, root.level))
