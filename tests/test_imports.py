"""The package's module graph has no import cycle, counting imports inside functions too."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import rlnas

PACKAGE = Path(rlnas.__file__).resolve().parent


def module_names() -> dict[str, Path]:
    """Every module of rlnas by dotted name (a package by its own name)."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported_modules(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The rlnas modules ``path`` imports anywhere (module level, functions, branches): for ``from a.b import c``
    the module ``a.b.c`` if there is one, else ``a.b``, as grimp / import-linter count them."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # import a.b.c where c is a name: the module a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def test_the_import_graph_is_walked():
    """The walk sees function-level imports (the CLI imports its commands lazily) and relative names resolve."""
    modules = module_names()
    graph = {name: imported_modules(path, name, modules) for name, path in modules.items()}
    assert "rlnas.latency.build" in graph["rlnas.cli"]  # imported inside _latency_build
    assert {"rlnas.space.rules", "rlnas.pruning.surgery"} <= graph["rlnas.pruning.prune"]


def test_no_import_cycle_inside_rlnas():
    modules = module_names()
    graph = {name: imported_modules(path, name, modules) for name, path in modules.items()}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None
    assert set(order) == set(modules)
