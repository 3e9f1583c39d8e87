"""factory's imports point down the line and never go round in a circle.

Every import statement counts, function-level ones included: a lazy import still ties the
two modules together, and lazy imports are how the circles of issue 10 hid. The layers
(docs/architecture.md): a package may import its own layer and those below it.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Top-level modules and subpackages of ``factory`` by layer, bottom first.
LAYERS = {
    "errors": 0, "console": 0, "files": 0, "redact": 0, "formatting": 0,  # basics
    "rundir": 1,  # the run-directory contract: basics and third-party libraries only
    "config": 2,
    "governance": 2,  # access policy, audit chain, encryption, lineage: below data, which calls them
    "data": 3,
    "models": 4, "distributed": 4,
    "training": 5, "export": 5,  # export: below the registry, which keeps and scores exported files
    "tracking": 6, "reports": 6, "sweeps": 6, "registry": 6,  # what runs after a run, readers of runs
    "analysis": 7, "serving": 7,  # serving reads the registry (stages, hot reload)
    "monitoring": 8,  # reads the request log (serving), registry versions and runs; writes what the server shows
    "cli": 9, "__init__": 9,  # the entry points: scripts' shared CLI and the notebook API
}

#: Known violations still being moved, as (importing file, imported package). Keep it empty;
#: an entry is a debt with an owner, never a way to let a new upward import in.
PENDING: set[tuple[str, str]] = set()


def _modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package at ``root``."""
    mods = {}
    for f in sorted(root.rglob("*.py")):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = f
    return mods


def _lazy_exports(init: Path, pkg: str) -> dict[str, str]:
    """Names the package root loads on first access (``_LAZY = {"plots": "factory.analysis.plots"}``)."""
    found = {}
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict):
            for k, v in zip(node.value.keys, node.value.values):
                if (isinstance(k, ast.Constant) and isinstance(v, ast.Constant) and isinstance(v.value, str)
                        and v.value.startswith(pkg + ".")):
                    found[k.value] = v.value
    return found


def import_graph(root: Path) -> dict[str, list[tuple[str, int]]]:
    """Each module of the package at ``root`` -> the package's modules it imports, with line numbers.

    ``from pkg.a import b`` is ``pkg.a.b`` when that is a module, else ``pkg.a``; ``from pkg import x``
    is the module the root exports lazily as ``x`` when there is one, else the root itself.
    """
    pkg, mods = root.name, _modules(root)
    lazy = _lazy_exports(root / "__init__.py", pkg)

    def resolve(name: str) -> str:
        while name not in mods:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, list[tuple[str, int]]] = {}
    for mod, f in mods.items():
        base = mod if f.name == "__init__.py" else mod.rpartition(".")[0]
        edges = graph[mod] = []
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == pkg]
            elif isinstance(node, ast.ImportFrom):
                source = node.module or ""
                if node.level:
                    source = ".".join(base.split(".")[: len(base.split(".")) - node.level + 1] + ([source] if source else []))
                if source.split(".")[0] != pkg:
                    continue
                targets = []
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    targets.append(sub if sub in mods else lazy.get(alias.name, source) if source == pkg else source)
            else:
                continue
            edges.extend((resolve(t), node.lineno) for t in targets if resolve(t) != mod)
    return graph


def _package(module: str) -> str:
    """``factory.data.split`` -> ``data``; the root itself is ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_problems(root: Path, layers: dict[str, int], pending: set[tuple[str, str]] = frozenset()) -> list[str]:
    """One line per upward import, per circle of modules and per circle of packages under ``root``."""
    graph = import_graph(root)
    files = _modules(root)
    problems = []
    for mod, edges in graph.items():
        where = files[mod].relative_to(root.parent).as_posix()
        src = _package(mod)
        if src not in layers:
            problems.append(f"{root.name}/{src}: no layer: add it to LAYERS (tests/unit/test_layers.py)")
        for target, line in sorted(edges, key=lambda edge: edge[1]):
            dst = _package(target)
            if src in layers and dst in layers and layers[dst] > layers[src] and (where, dst) not in pending:
                problems.append(f"{where}:{line}: {src} (layer {layers[src]}) imports {dst} (layer {layers[dst]})")
    for circle in _circles({m: {t for t, _ in e} for m, e in graph.items()}):
        problems.append(f"import circle among modules: {', '.join(circle)}")
    packages: dict[str, set[str]] = {}
    for mod, edges in graph.items():
        packages.setdefault(_package(mod), set()).update(_package(t) for t, _ in edges if _package(t) != _package(mod))
    for circle in _circles(packages):
        problems.append(f"import circle among packages: {', '.join(circle)}")
    return list(dict.fromkeys(problems))  # in file and line order, each once


def test_factory_imports_point_down_the_line():
    problems = layer_problems(REPO / "factory", LAYERS, PENDING)
    assert not problems, "\n".join(problems)


def test_pending_violations_still_exist():
    """An allow-list entry goes once its import is moved, so it cannot hide a new one later."""
    graph, files = import_graph(REPO / "factory"), _modules(REPO / "factory")
    seen = {(files[m].relative_to(REPO).as_posix(), _package(t)) for m, e in graph.items() for t, _ in e}
    assert PENDING <= seen, f"moved already, drop from PENDING: {sorted(PENDING - seen)}"


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


PLANTED_LAYERS = {"low": 0, "high": 1, "other": 1, "__init__": 2}


def test_an_upward_import_fails_naming_the_line_and_packages(tmp_path):
    root = _plant(tmp_path, {"low/__init__.py": "", "low/a.py": "def f():\n    from pkg.high import b\n",
                             "high/__init__.py": "", "high/b.py": "from pkg.low import a\n"})
    problems = layer_problems(root, PLANTED_LAYERS)
    assert "pkg/low/a.py:2: low (layer 0) imports high (layer 1)" in problems
    assert "import circle among modules: pkg.high.b, pkg.low.a" in problems


def test_a_circle_in_one_layer_fails_naming_it(tmp_path):
    root = _plant(tmp_path, {"high/__init__.py": "from . import x\n", "high/x.py": "from .y import g\n",
                             "high/y.py": "def g():\n    from pkg.high import x\n",
                             "other/__init__.py": "", "other/c.py": "import pkg.high.x\n"})
    assert layer_problems(root, PLANTED_LAYERS) == ["import circle among modules: pkg.high.x, pkg.high.y"]
    (root / "high" / "z.py").write_text("from pkg.other import c\n")
    assert "import circle among packages: high, other" in layer_problems(root, PLANTED_LAYERS)


def test_the_root_and_its_lazy_exports_count(tmp_path):
    root = _plant(tmp_path, {"__init__.py": '_LAZY = {"b": "pkg.high.b"}\n', "low/__init__.py": "",
                             "low/a.py": "from pkg import b, version\n", "high/__init__.py": "", "high/b.py": ""})
    assert layer_problems(root, PLANTED_LAYERS) == ["pkg/low/a.py:1: low (layer 0) imports high (layer 1)",
                                                    "pkg/low/a.py:1: low (layer 0) imports __init__ (layer 2)"]


def test_a_package_without_a_layer_fails(tmp_path):
    root = _plant(tmp_path, {"low/__init__.py": "", "new/__init__.py": ""})
    assert "pkg/new: no layer: add it to LAYERS (tests/unit/test_layers.py)" in layer_problems(root, PLANTED_LAYERS)
