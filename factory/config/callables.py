"""Check that a dotted name (``factory.reports.after_run``) names a function, importing nothing.

Config values that name code to call later (the ``after_run`` hooks) are checked with the
rest of the config, before torch loads: the module is found on the import path without
being imported, and its source must define the name at top level.
"""
from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import sys
from pathlib import Path


def problem(dotted: str) -> str | None:
    """Why ``dotted`` cannot name a function (one line), or ``None`` if it can."""
    module, _, name = dotted.rpartition(".")
    if not module or not all(part.isidentifier() for part in dotted.split(".")):
        return f"{dotted!r} is not a dotted path to a function (package.module.function)"
    if module in sys.modules:  # imported already: ask it
        found = getattr(sys.modules[module], name, None)
        return None if callable(found) else f"{dotted!r}: module {module} has no function {name}"
    spec = _find_spec(module)
    if spec is None:
        return f"{dotted!r}: no module {module}"
    if spec.origin and spec.origin.endswith(".py") and Path(spec.origin).is_file():
        if name not in _top_level_names(Path(spec.origin)):
            return f"{dotted!r}: module {module} has no function {name}"
    return None  # a compiled or frozen module: checked when the hook is imported


def _find_spec(module: str):
    """The module's spec, found without importing it or its packages (``None``: no such module)."""
    parts = module.split(".")
    spec = None
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        if name in sys.modules:
            spec = getattr(sys.modules[name], "__spec__", None)
        elif i == 0:
            spec = importlib.util.find_spec(name)
        elif spec is None or spec.submodule_search_locations is None:
            return None  # the parent is not a package
        else:
            spec = importlib.machinery.PathFinder.find_spec(name, list(spec.submodule_search_locations))
        if spec is None:
            return None
    return spec


def _top_level_names(source: Path) -> set[str]:
    """Names a module's source defines or imports at top level (all names if it has ``__getattr__``)."""
    names: set[str] = set()
    try:
        body = ast.parse(source.read_text(encoding="utf-8")).body
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return _Everything()  # unreadable here: importing it will tell
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    if "__getattr__" in names:
        return _Everything()
    return names


class _Everything(set):
    """A module-level ``__getattr__`` may provide any name."""

    def __contains__(self, item: object) -> bool:
        return True
