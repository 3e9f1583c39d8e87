"""data.encoded_cache in a real fit: cached epochs, stopped mid-epoch and resumed, train exactly as an uncached run."""
from __future__ import annotations

import json

import pytest

from tests.integration.helpers import manifest, run_dirs
from tests.integration.test_streaming_train import _overrides, _parquet_dir


@pytest.mark.slow
def test_a_cached_run_stopped_mid_epoch_resumes_as_the_uncached_run(tmp_path, monkeypatch):
    from factory import compose
    from factory.training.fault_tolerance import EXIT_INTERRUPTED
    from factory.training.recipe import run

    path = _parquet_dir(tmp_path)
    overrides = [*_overrides(path), "trainer.max_epochs=3", "data.num_workers=0", "resume=auto",
                 "+callbacks.kill._target_=tests.integration.fault_injection.KillAt"]
    cache = tmp_path / "encoded"
    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path / "reference"))
    monkeypatch.delenv("FAULT_INJECT", raising=False)
    reference = run(compose("train", overrides)).run_dir  # no cache: every epoch read and encoded
    cached = [*overrides, f"data.encoded_cache={cache}"]
    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path / "resumed"))
    monkeypatch.setenv("FAULT_INJECT", "SIGTERM@step20")  # epoch 1 of 3, mid-way: epoch 0 wrote the cache
    with pytest.raises(SystemExit) as stopped:
        run(compose("train", cached))
    assert stopped.value.code == EXIT_INTERRUPTED
    (stopped_dir,) = run_dirs(tmp_path / "resumed")
    assert manifest(stopped_dir)["status"] != "completed"
    units = sorted(p.name for p in cache.glob("*/*") if p.is_dir())
    assert {u.split("-")[0] for u in units} >= {"train", "val"} and not list(cache.glob("*/.tmp-*"))
    monkeypatch.delenv("FAULT_INJECT")
    resumed = run(compose("train", cached)).run_dir  # reads the kept units (and writes test's)
    assert manifest(resumed)["attempt"] == 2
    assert (resumed / "csv" / "metrics.csv").read_text() == (reference / "csv" / "metrics.csv").read_text()
    assert json.loads((resumed / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
