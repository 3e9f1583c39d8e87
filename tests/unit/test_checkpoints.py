"""Resolving ckpt_path and telling sharded from file checkpoints."""
from __future__ import annotations

import os

import pytest

from factory import checkpoints
from factory.errors import ConfigError


def _last(run_dir, sharded=False, mtime=0):
    path = run_dir / "checkpoints" / "last.ckpt"
    if sharded:
        path.mkdir(parents=True)
    else:
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))
    return path


def test_last_is_the_newest_run_of_the_task_sweeps_included(tmp_path):
    task = tmp_path / "outputs" / "demo"
    _last(task / "2026-01-01_00-00-00_aaaaaa", mtime=100)
    newest = _last(task / "multirun" / "2026-01-02_00-00-00" / "10", mtime=300)
    _last(task / "multirun" / "2026-01-02_00-00-00" / "9", mtime=200)
    current = task / "2026-01-03_00-00-00_bbbbbb"
    _last(current, mtime=400)  # the run being started is never its own resume point
    assert checkpoints.resolve_resume("last", task, current) == str(newest)


def test_last_without_earlier_runs_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="ckpt_path=last: no run under"):
        checkpoints.resolve_resume("last", tmp_path / "outputs" / "demo")


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="ckpt_path: no such checkpoint"):
        checkpoints.resolve_resume(str(tmp_path / "nope.ckpt"), tmp_path)


def test_formats_must_match_the_strategy(tmp_path):
    sharded = _last(tmp_path / "a", sharded=True)
    single = _last(tmp_path / "b")
    assert checkpoints.checkpoint_format(sharded) == "sharded"
    assert checkpoints.checkpoint_format(single) == "file"
    with pytest.raises(ConfigError, match="sharded DeepSpeed checkpoint"):
        checkpoints.check_resume_format(str(sharded), sharded_strategy=False)
    with pytest.raises(ConfigError, match="single-file checkpoint"):
        checkpoints.check_resume_format(str(single), sharded_strategy=True)
    checkpoints.check_resume_format(str(sharded), sharded_strategy=True)


def test_consolidated_path_sits_beside_the_directory(tmp_path):
    assert checkpoints.consolidated_path(tmp_path / "best.ckpt") == tmp_path / "best-fp32.ckpt"


def test_consolidate_refuses_a_file(tmp_path):
    with pytest.raises(ConfigError, match="not a sharded"):
        checkpoints.consolidate(_last(tmp_path))
