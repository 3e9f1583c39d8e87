"""factory.rundir.layout names every file of a run directory; nothing else in factory/ spells one."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from factory.rundir import layout

PACKAGE = Path(layout.__file__).resolve().parents[1]  # factory/
CONF = PACKAGE.parent / "conf"
#: Folder names that are also ordinary words elsewhere: spelled alone, they name a run-directory
#: folder only in these modules' hands, which must import them (a file format, a CLI, a module
#: name spell the same word for another thing).
WORDS = {layout.CSV_DIR, layout.WANDB_DIR, layout.TENSORBOARD_DIR}
#: (module, literal) where the word means something else: not a run directory's folder.
OTHER_MEANINGS = {
    ("data/sources/files.py", "csv"),     # a table's file format
    ("config/schemas.py", "csv"),         # FileSource.format's choices
    ("serving/score_input.py", "csv"),    # a file format batch scoring reads
    ("tracking/sync.py", "wandb"),        # `python -m wandb sync`
}


def layout_names() -> set[str]:
    """Every file or folder name ``layout`` defines, and every relative path (``csv/metrics.csv``)."""
    names: set[str] = set()
    for name, value in vars(layout).items():
        if name.isupper() and not name.startswith("_") and name != "RUN_ID_ENV":
            values = value if isinstance(value, tuple) else (value,)
            names.update(str(v) for v in values if isinstance(v, (str, Path)))
    return names


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def spelled(literal: str, names: set[str]) -> str | None:
    """The run-directory name ``literal`` spells: equal to one, or one of its path components
    (a glob such as ``**/checkpoints/last.ckpt`` included); the ordinary words only when equal."""
    if literal in names:
        return literal
    parts = [p for p in literal.replace("\\", "/").split("/") if p]
    if "/" in literal:
        for part in parts:
            if part in names and part not in WORDS:
                return part
    for name in names:  # a name inside a longer path or message: '<run>/checkpoints/last.ckpt'
        if "/" in name and name in literal:
            return name
    return None


def offenders(root: Path = PACKAGE) -> list[str]:
    names = layout_names()
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative.startswith("rundir/"):
            continue
        tree = ast.parse(path.read_text())
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                name = spelled(node.value, names)
                if name and (relative, node.value) not in OTHER_MEANINGS:
                    found.append((relative, node.lineno, f"factory/{relative}:{node.lineno}: {node.value!r} spells {name!r}"))
    return [line for *_, line in sorted(found)]


def test_no_module_outside_rundir_spells_a_run_directory_name():
    assert offenders() == [], "import the name from factory.rundir.layout instead:\n" + "\n".join(offenders())


def test_the_scan_finds_a_planted_literal(tmp_path):
    (tmp_path / "reader.py").write_text('"""Reads run.json."""\n'
                                        'import json\n'
                                        'def status(d):\n'
                                        '    """From d/run.json."""\n'
                                        '    return json.load(open(d + "/run.json"))\n'
                                        'LAST = "checkpoints/last.ckpt"\n'
                                        'FORMAT = "csv"\n'
                                        'STASH = f"{1}/csv/metrics.before-resume.csv"\n')
    found = offenders(tmp_path)
    assert [line.split(": ", 1)[0] for line in found] == [f"factory/reader.py:{n}" for n in (5, 6, 7, 8)]
    assert "spells 'run.json'" in found[0] and "spells 'checkpoints'" in found[1]


@pytest.mark.parametrize("literal, name", [
    ("run.json", "run.json"), ("**/checkpoints/last.ckpt", "checkpoints"), ("csv", "csv"),
    (".hydra", ".hydra"), ("metrics.json", "metrics.json"), ("sweep.json", None), ("a csv file", None),
    ("model.ckpt", None), ("python -m wandb", None),
])
def test_what_counts_as_spelling_a_name(literal, name):
    assert spelled(literal, layout_names()) == name


def test_the_paths_join_the_names():
    run = Path("outputs/demo/r1")
    assert layout.last_checkpoint(run) == run / "checkpoints" / "last.ckpt"
    assert layout.checkpoint_dir(run) == run / "checkpoints"
    assert layout.HISTORY == Path("csv", "metrics.csv") and layout.HISTORY.parent.name == layout.CSV_DIR
    assert layout.in_checkpoint_dir(run / "checkpoints" / "best.ckpt")
    assert not layout.in_checkpoint_dir(run / "model.ckpt")


def test_is_run_dir_needs_run_json(tmp_path):
    assert not layout.is_run_dir(tmp_path)
    (tmp_path / "run.json").write_text("{}")
    assert layout.is_run_dir(tmp_path)


def test_the_conf_yaml_names_agree_with_layout():
    """Lightning writes these from the YAML: a renamed constant must rename them there too."""
    callbacks = yaml.safe_load((CONF / "callbacks" / "default.yaml").read_text())
    checkpoint = callbacks["model_checkpoint"]
    assert checkpoint["dirpath"] == "${paths.run_dir}/" + layout.CHECKPOINTS
    assert checkpoint["filename"] + ".ckpt" == layout.BEST and checkpoint["save_last"] is True
    assert callbacks["preemption"]["dirpath"] == "${paths.run_dir}/" + layout.CHECKPOINTS
    assert yaml.safe_load((CONF / "logger" / "csv.yaml").read_text())["name"] == layout.CSV_DIR
    assert yaml.safe_load((CONF / "hydra" / "default.yaml").read_text())["output_subdir"] == layout.HYDRA_DIR


def test_the_manifest_module_reexports_the_one_definition():
    from factory.rundir import manifest, resume

    assert (manifest.MANIFEST, manifest.CONFIG, manifest.METRICS) == (layout.MANIFEST, layout.CONFIG, layout.METRICS)
    assert resume.HISTORY is layout.HISTORY and resume.LOCK is layout.LOCK
