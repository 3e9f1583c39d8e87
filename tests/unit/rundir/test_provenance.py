"""``git_state``: the dirty flag in ``run.json``, checked against a real git repository."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from factory.rundir.provenance import git_state

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed checkout shaped like factory's: sources, configs, ignored outputs/ and .venv."""
    root = tmp_path / "checkout"
    for name, text in {"conf/train.yaml": "seed: 1\n", "factory/__init__.py": "", "scripts/train.py": "",
                       ".gitignore": "/outputs/\n.venv/\n/data/demo/\n"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "init")
    return root


def _write(path: Path, text: str = "x\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_clean_checkout_is_not_dirty(repo):
    state = git_state(repo)
    assert len(state["commit"]) == 40 and state["dirty"] is False


@pytest.mark.parametrize("new_file", ["conf/experiment/mine.yaml", "conf/new_group/option.yaml",
                                      "factory/models/net.py", "scripts/mine.py", "notebooks/mine.ipynb",
                                      "hydra_plugins/mine/sweeper.py"])
def test_untracked_config_or_source_file_makes_it_dirty(repo, new_file):
    _write(repo / new_file)  # a run can be defined by it: the commit alone cannot reproduce the run
    assert git_state(repo)["dirty"] is True


@pytest.mark.parametrize("other_file", ["outputs/train/run/run.json", ".venv/lib/site.py", "data/demo/x.csv",
                                        "data/raw/table.csv", "notes.txt"])
def test_ignored_or_non_source_untracked_files_keep_it_clean(repo, other_file):
    _write(repo / other_file)
    assert git_state(repo)["dirty"] is False


def test_modified_tracked_file_makes_it_dirty(repo):
    (repo / "conf/train.yaml").write_text("seed: 2\n")
    assert git_state(repo)["dirty"] is True


def test_outside_a_repository_is_none(tmp_path):
    assert git_state(tmp_path) is None
