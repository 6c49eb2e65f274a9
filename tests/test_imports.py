"""The package's module graph has no import cycle, counting imports inside functions too."""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Collection
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


def imported_modules(source: str, name: str, is_package: bool, modules: Collection[str]) -> set[str]:
    """The rlnas modules the module ``name`` imports anywhere in ``source`` (module level, functions, branches):
    for ``from a.b import c`` the module ``a.b.c`` if there is one, else ``a.b``, as grimp / import-linter count."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
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


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {
        name: imported_modules(path.read_text(), name, path.name == "__init__.py", modules)
        for name, path in modules.items()
    }


def test_the_walk_sees_every_kind_of_import():
    source = """
import rlnas.a.b
from rlnas.c import d, helper
from . import e
from .f import g
def lazy():
    from rlnas.h import i
if True:
    import numpy
"""
    modules = {"rlnas", "rlnas.a", "rlnas.a.b", "rlnas.c", "rlnas.c.d", "rlnas.x", "rlnas.x.e", "rlnas.x.f", "rlnas.h"}
    found = imported_modules(source, "rlnas.x.y", False, modules)
    assert found == {"rlnas.a.b", "rlnas.c.d", "rlnas.c", "rlnas.x.e", "rlnas.x.f", "rlnas.h"}


def test_no_import_cycle_inside_rlnas():
    graph = import_graph()
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None
