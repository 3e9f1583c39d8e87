"""The rule every reader of a run follows: its best checkpoint, else its last (defined once)."""
from __future__ import annotations

from pathlib import Path

from factory.rundir import checkpoints, layout, manifest


def _record(run_dir: Path, best: bool = True, last: bool = True) -> manifest.RunRecord:
    ckpts = layout.checkpoint_dir(run_dir)
    return manifest.RunRecord(run_id=run_dir.name, task_name="demo", run_dir=str(run_dir),
                              best_checkpoint=str(ckpts / layout.BEST) if best else None,
                              last_checkpoint=str(ckpts / layout.LAST) if last else None)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_best_if_recorded_else_last(tmp_path):
    record = _record(tmp_path)
    last = _touch(layout.last_checkpoint(tmp_path))
    assert checkpoints.judged_path(tmp_path, record) is None  # best recorded but gone: never the last instead
    best = _touch(layout.checkpoint_dir(tmp_path) / layout.BEST)
    assert checkpoints.judged_path(tmp_path, record) == best
    assert checkpoints.judged_path(tmp_path, _record(tmp_path, best=False)) == last


def test_a_moved_run_uses_its_own_copy_first(tmp_path):
    written = tmp_path / "then"
    record = _record(written)
    _touch(layout.checkpoint_dir(written) / layout.BEST)
    moved = tmp_path / "now"
    own = _touch(layout.checkpoint_dir(moved) / layout.BEST)
    assert checkpoints.judged_path(moved, record) == own
    own.unlink()
    assert checkpoints.judged_path(moved, record) == layout.checkpoint_dir(written) / layout.BEST  # where it was written


def test_nothing_recorded_is_no_checkpoint(tmp_path):
    """A failed run's leftover last.ckpt (perhaps diverged weights) is not what the run is judged by."""
    record = _record(tmp_path, best=False, last=False)
    _touch(layout.last_checkpoint(tmp_path))
    assert checkpoints.judged_candidates(tmp_path, record) == []
    assert checkpoints.judged_path(tmp_path, record) is None


def test_a_sharded_directory_counts(tmp_path):
    record = _record(tmp_path)
    best = layout.checkpoint_dir(tmp_path) / layout.BEST
    best.mkdir(parents=True)
    assert checkpoints.judged_path(tmp_path, record) == best


def test_every_reader_takes_the_same_checkpoint(tmp_path):
    """resolve_checkpoint (evaluate, load_model), the registry and the trackers agree, and all
    refuse a run whose recorded best is gone rather than take its last instead."""
    import pytest

    from factory.errors import ConfigError, FactoryError
    from factory.registry.capture import _judged_checkpoint
    from factory.tracking.loggers import checkpoint_file

    record = _record(tmp_path)
    record.save()
    _touch(layout.last_checkpoint(tmp_path))  # best recorded, but gone
    with pytest.raises(ConfigError, match="best.ckpt is missing"):
        checkpoints.resolve_checkpoint(tmp_path)
    with pytest.raises(FactoryError, match="best.ckpt is missing; nothing to register"):
        _judged_checkpoint(tmp_path, record)
    assert checkpoint_file(record) is None
    best = _touch(layout.checkpoint_dir(tmp_path) / layout.BEST)
    assert checkpoints.resolve_checkpoint(tmp_path) == best
    assert _judged_checkpoint(tmp_path, record) == best
    assert checkpoint_file(record) == best
    assert checkpoints.judged_checkpoint(tmp_path, None) == best
