"""Run manifest and atomic writes."""
from __future__ import annotations

import json
import os

import pytest

from factory import files
from factory.rundir import manifest


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "index.json"
    files.write_json(path, {"v": 1})
    files.write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["index.json"]  # no temp files left


def test_failed_write_keeps_previous_version(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    files.write_json(path, {"status": "running"})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        files.write_json(path, {"status": "completed"})
    assert json.loads(path.read_text()) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_record_lifecycle(tmp_path):
    run_dir = tmp_path / "2026-01-01_00-00-00_abcdef"
    run_dir.mkdir()
    record = manifest.RunRecord.begin(run_dir, "demo", seed=3, tags=["a"])
    record.save()
    assert manifest.load_record(run_dir).status == "running"
    try:
        raise ValueError("boom")
    except ValueError as e:
        record.finish("failed", e)
    loaded = manifest.load_record(run_dir)
    assert loaded.status == "failed" and loaded.error == "ValueError: boom"
    assert loaded.run_id == run_dir.name and loaded.seed == 3
    assert loaded.duration_s is not None and loaded.ended_at is not None
    assert {"python", "torch", "pytorch-lightning", "factory"} <= set(loaded.versions)
