"""Every error code the server can send is in docs/PROTOCOL.md, with its
HTTP status, and every code listed there exists."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import server
from server.core.errors import SidecoachError
from server.live.media_failure import Cause
from server.live.session import Removal

PROTOCOL = Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md"
ROW = re.compile(r"^\| `([a-z_]+)` \| (\d{3}|–) \| (.+) \|$", re.MULTILINE)
REMOVAL_ROW = re.compile(r"^\| `([a-z_]+)` \| ([^|]+) \|$", re.MULTILINE)


def _error_classes() -> list[type[SidecoachError]]:
    for info in pkgutil.walk_packages(server.__path__, "server."):
        importlib.import_module(info.name)
    found: list[type[SidecoachError]] = []
    todo = [SidecoachError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_code_is_documented_with_its_status() -> None:
    text = PROTOCOL.read_text()
    table = text[text.index("## Error codes") :]
    documented = {code: status for code, status, _ in ROW.findall(table)}
    statuses: dict[str, set[int]] = {}
    for cls in _error_classes():
        if "code" in vars(cls):  # a class that names its own code
            statuses.setdefault(cls.code, set()).add(cls.status)
    missing = sorted(set(statuses) - set(documented))
    assert not missing, f"codes the server can send but PROTOCOL.md does not list: {missing}"
    stale = sorted(set(documented) - set(statuses))
    assert not stale, f"codes PROTOCOL.md lists but no error class has: {stale}"
    for code, status in documented.items():
        if status != "–":
            assert statuses[code] == {int(status)}, (code, statuses[code], status)


def test_every_removal_code_is_documented() -> None:
    text = PROTOCOL.read_text()
    start = text.index("`removed {code}` (the server removed")
    causes = text.index("`removed.cause` with `peer_failed`", start)
    table = text[start:causes]
    assert {code for code, _ in REMOVAL_ROW.findall(table)} == {str(r) for r in Removal}
    documented = {code for code, _ in REMOVAL_ROW.findall(text[causes:])}
    assert documented == {str(c) for c in Cause}


PROTOCOL_JS = PROTOCOL.parents[1] / "web_client" / "static" / "js" / "protocol.js"
#: codes a page's own Connection makes (never sent by the server)
PAGE_MADE = {"offline", "timeout"}


def _js_block(name: str) -> set[str]:
    text = PROTOCOL_JS.read_text()
    block = text[text.index(f"export const {name} = Object.freeze({{") :]
    block = block[: block.index("});")]
    return set(re.findall(r'^\s+[A-Z_]+: "([a-z_]+)",$', block, re.MULTILINE))


def test_the_pages_know_every_code_and_no_other() -> None:
    text = PROTOCOL.read_text()
    documented = {code for code, _, _ in ROW.findall(text[text.index("## Error codes") :])}
    assert _js_block("ERROR") - PAGE_MADE == documented
    assert _js_block("REMOVAL") == {str(r) for r in Removal}
