"""sweep.json: merging trial updates, the best trial, and writers in two processes."""
from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from factory.errors import ConfigError
from factory.sweeps import journal


def _start(tmp_path: Path, mode: str = "max") -> Path:
    journal.start(tmp_path, kind="grid", command="python scripts/train.py -m x=1,2", metric="val/pr_auc", mode=mode)
    return tmp_path


def test_trials_merge_and_best_follows_the_mode(tmp_path):
    sweep = _start(tmp_path)
    journal.update_trial(sweep, 1, status="running", overrides=["x=2"], run_dir="/r/1")
    journal.update_trial(sweep, 0, status="running", overrides=["x=1"], run_dir="/r/0")
    journal.update_trial(sweep, 0, status="completed", value=0.4, run_dir=None)  # None keeps run_dir
    journal.update_trial(sweep, 1, status="completed", value=0.7)
    journal.update_trial(sweep, 2, status="failed", error="ValueError: boom")
    record = journal.read(sweep)
    assert [t["number"] for t in record["trials"]] == [0, 1, 2]
    assert record["trials"][0]["run_dir"] == "/r/0"
    assert record["best"]["number"] == 1 and record["best"]["value"] == 0.7
    assert record["status"] == "running"

    journal.start(sweep, kind="grid", command="ignored", metric="val/loss", mode="min")  # a resume
    record = journal.read(sweep)
    assert record["command"] == "python scripts/train.py -m x=1,2" and len(record["trials"]) == 3
    assert record["best"]["number"] == 0  # min now


def test_pruned_and_failed_trials_are_never_best(tmp_path):
    sweep = _start(tmp_path)
    journal.update_trial(sweep, 0, status="pruned", value=0.99)
    journal.update_trial(sweep, 1, status="failed", value=None)
    journal.update_trial(sweep, 2, status="completed", value=float("nan"))
    assert journal.read(sweep)["best"] is None
    journal.update_trial(sweep, 3, status="completed", value=0.1)
    assert journal.read(sweep)["best"]["number"] == 3
    journal.finish(sweep, "completed")
    assert journal.read(sweep)["status"] == "completed"


def test_read_names_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match="no sweep.json"):
        journal.read(tmp_path)
    (tmp_path / "sweep.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not readable as JSON"):
        journal.read(tmp_path)
    (tmp_path / "sweep.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(ConfigError, match="no trials list"):
        journal.read(tmp_path)


def _writer(sweep: str, first: int) -> None:
    for number in range(first, first + 20):
        journal.update_trial(sweep, number, status="completed", value=float(number))


def test_two_processes_never_lose_an_update(tmp_path):
    sweep = _start(tmp_path)
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(str(sweep), first)) for first in (0, 20)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    numbers = [t["number"] for t in journal.read(sweep)["trials"]]
    assert numbers == list(range(40))
