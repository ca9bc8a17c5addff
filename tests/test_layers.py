"""Layers import one way (docs/ARCHITECTURE.md): a package of server/
imports only packages below it, never one above, and no module imports
itself back in a circle. TYPE_CHECKING-only imports are for types and do
not count."""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[1] / "server"

#: bottom to top; a package may import those before it (and itself)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("media",),
    ("storage",),
    ("recording",),
    ("people",),
    ("access",),
    ("bug_in_ear",),
    ("live",),
    ("ops",),
    ("signaling",),
    ("http",),
    ("cluster",),
    ("app",),
    ("serve",),
    ("cli", "__main__"),
)
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}


def _runtime_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = getattr(test, "id", None) or getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                skip.update(id(n) for sub in node.body for n in ast.walk(sub))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("server.")}


def _package(module: str) -> str:
    return module.split(".")[1]


def test_every_package_has_a_layer() -> None:
    here = {p.stem if p.is_file() else p.name for p in SERVER.iterdir()}
    here -= {"__init__", "__pycache__"}
    assert here <= set(LEVEL), f"packages without a layer: {sorted(here - set(LEVEL))}"


def test_no_upward_imports() -> None:
    upward = []
    for path in sorted(SERVER.rglob("*.py")):
        rel = path.relative_to(SERVER.parent).with_suffix("")
        parts = rel.parts if rel.name != "__init__" else rel.parts[:-1]
        if len(parts) < 2:
            continue
        mine = parts[1]
        for target in _runtime_imports(path):
            theirs = _package(target)
            if theirs in LEVEL and LEVEL[theirs] > LEVEL[mine]:
                upward.append(f"{'.'.join(parts)} -> {target}")
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


def test_no_circles_between_modules() -> None:
    modules: dict[str, Path] = {}
    for path in SERVER.rglob("*.py"):
        rel = path.relative_to(SERVER.parent).with_suffix("")
        parts = rel.parts if rel.name != "__init__" else rel.parts[:-1]
        modules[".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target in _runtime_imports(path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                targets.add(target)
        graph[name] = targets
    # a module is in a circle when it can reach itself
    circles = []
    for start in sorted(graph):
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            node = todo.pop()
            if node == start:
                circles.append(start)
                break
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
    assert not circles, f"modules that import themselves back: {circles}"
