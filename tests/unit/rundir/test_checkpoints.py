"""Resolving ckpt_path and telling sharded from file checkpoints."""
from __future__ import annotations

import os

import pytest

from factory.rundir import checkpoints
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


def test_export_path_sits_beside_the_directory(tmp_path):
    assert checkpoints.export_path(tmp_path / "best.ckpt") == tmp_path / "best-fp32.ckpt"


def _shards(tmp_path, model_states=None):
    """A ZeRO directory's layout: ``latest`` naming the tag directory that holds the shards."""
    import torch

    sharded = tmp_path / "run" / "checkpoints" / "best.ckpt"
    (sharded / "checkpoint").mkdir(parents=True)
    (sharded / "latest").write_text("checkpoint")
    shard = sharded / "checkpoint" / "mp_rank_00_model_states.pt"
    torch.save({"module": {"w": torch.zeros(3)}}, shard)
    if model_states is not None:
        shard.write_bytes(model_states(shard.read_bytes()))
    return sharded, shard


def test_reads_consolidate_into_the_cache_keyed_by_the_shards(tmp_path):
    sharded, shard = _shards(tmp_path)
    cached = checkpoints.consolidated_path(sharded)
    assert checkpoints.cache_dir() in cached.parents and sharded.parent not in cached.parents
    assert checkpoints.consolidated_path(sharded) == cached  # stable while the shards are
    os.utime(shard, ns=(1, 1))  # rewritten in place (a resumed run's last.ckpt): a new key
    assert checkpoints.consolidated_path(sharded) != cached


def test_a_truncated_shard_is_named(tmp_path):
    sharded, shard = _shards(tmp_path, model_states=lambda data: data[: len(data) // 2])
    with pytest.raises(ConfigError, match=f"shard {shard} is damaged"):
        checkpoints.check_shards(sharded)
    with pytest.raises(ConfigError, match=f"shard {shard} is damaged"):
        checkpoints.as_file(sharded)
    assert list(sharded.parent.iterdir()) == [sharded]  # nothing written beside it


def test_a_run_directory_names_its_best_checkpoint(tmp_path):
    from factory.rundir import manifest

    run_dir = tmp_path / "outputs" / "demo" / "r1"
    best = _last(run_dir)
    manifest.RunRecord(run_id="r1", task_name="demo", run_dir=str(run_dir), best_checkpoint=str(best)).save()
    assert checkpoints.resolve_checkpoint(run_dir) == best
    moved = tmp_path / "moved"
    run_dir.rename(moved)  # run.json keeps the old path: the moved copy's own checkpoint is used
    assert checkpoints.resolve_checkpoint(moved) == moved / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match="neither a DeepSpeed checkpoint .* nor a run directory"):
        checkpoints.resolve_checkpoint(moved / "checkpoints")


def test_a_missing_path_is_no_such_file_even_for_export(tmp_path):
    with pytest.raises(ConfigError, match="no such checkpoint file"):
        checkpoints.consolidate(tmp_path / "nope.ckpt")


def test_consolidate_refuses_a_file(tmp_path):
    with pytest.raises(ConfigError, match="not a sharded"):
        checkpoints.consolidate(_last(tmp_path))


def test_an_export_is_current_until_a_shard_is_rewritten(tmp_path):
    import os

    from factory.rundir.checkpoints import is_newer_than_shards

    shards = tmp_path / "best.ckpt" / "checkpoint"
    shards.mkdir(parents=True)
    (shards / "mp_rank_00_model_states.pt").write_bytes(b"x")
    export = tmp_path / "best-fp32.ckpt"
    assert not is_newer_than_shards(export, tmp_path / "best.ckpt")  # none yet
    export.write_bytes(b"y")
    os.utime(export, ns=(2_000_000_000_000_000_000, 2_000_000_000_000_000_000))
    assert is_newer_than_shards(export, tmp_path / "best.ckpt")
    os.utime(shards / "mp_rank_00_model_states.pt", ns=(3_000_000_000_000_000_000, 3_000_000_000_000_000_000))
    assert not is_newer_than_shards(export, tmp_path / "best.ckpt")
