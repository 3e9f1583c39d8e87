"""Training on a streamed Parquet directory (data=files_stream): one process and DDP, then registry and ONNX."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

import factory
from factory import registry
from factory.data.sources.fraud import generate_transactions
from tests.integration.helpers import manifest, run_dirs, run_script, trained_run


def _parquet_dir(root):
    """Spark's layout of a small fraud table: three part files in row groups of 250, and _SUCCESS."""
    out = root / "transactions"
    out.mkdir()
    for i in range(3):
        table = generate_transactions(1000, 0.1, seed=i, world_seed=7)
        pq.write_table(table, out / f"part-{i:05d}-c000.snappy.parquet", row_group_size=250)
    (out / "_SUCCESS").touch()
    return out


def _overrides(path) -> list[str]:
    return ["data=files_stream", f"data.source.path={path}", "data.source.target=is_fraud", "task_name=stream",
            "logger=csv", "baseline=null", "trainer.max_epochs=2", "data.batch_size=128", "data.num_workers=1"]


def test_a_streamed_run_registers_exports_and_scores_as_it_trained(tmp_path):
    run_dir = trained_run(tmp_path, _overrides(_parquet_dir(tmp_path)))
    record = manifest(run_dir)
    assert record["data"]["source"] == "files" and sum(record["data"]["rows"].values()) == 3000
    expected = factory.load_run(run_dir).predictions("test")  # the run's DataModule rebuilt: streamed again
    reg = tmp_path / "registry"
    registry.register(run_dir, registry=reg, export=True)
    loaded = registry.load("stream", reg)
    test_rows = loaded.datamodule().split_table("test")
    assert test_rows.num_rows == len(expected) > 0
    got = loaded.predict(test_rows)
    np.testing.assert_array_equal(got["score"].to_numpy(), expected["score"].to_numpy())
    onnx = registry.load("stream", reg, backend="onnx").predict(test_rows)
    np.testing.assert_allclose(onnx["score"].to_numpy(), expected["score"].to_numpy(), atol=1e-5)


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_streams_each_its_share(tmp_path):
    path = _parquet_dir(tmp_path)
    result = run_script(tmp_path, "train.py", *_overrides(path), "strategy=ddp", "trainer.devices=2",
                        "trainer.accelerator=cpu")
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path)
    record = manifest(run_dir)
    assert record["status"] == "completed" and record["strategy"] == {"name": "ddp", "world_size": 2}
    assert json.loads((run_dir / "metrics.json").read_text())["test"]["test/auroc"] > 0.6


@pytest.mark.slow
def test_a_streamed_run_stopped_mid_epoch_resumes_as_if_uninterrupted(tmp_path, monkeypatch):
    from factory import compose
    from factory.training.fault_tolerance import EXIT_INTERRUPTED
    from factory.training.recipe import run

    path = _parquet_dir(tmp_path)
    overrides = [*_overrides(path), "trainer.max_epochs=3", "data.num_workers=0", "resume=auto",
                 "+callbacks.kill._target_=tests.integration.fault_injection.KillAt"]
    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path / "reference"))
    monkeypatch.delenv("FAULT_INJECT", raising=False)
    reference = run(compose("train", overrides)).run_dir
    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path / "resumed"))
    monkeypatch.setenv("FAULT_INJECT", "SIGTERM@step20")  # epoch 1 of 3, mid-way (~14 steps an epoch)
    with pytest.raises(SystemExit) as stopped:
        run(compose("train", overrides))
    assert stopped.value.code == EXIT_INTERRUPTED
    (stopped_dir,) = run_dirs(tmp_path / "resumed")
    assert manifest(stopped_dir)["error"].startswith("Interrupted: SIGTERM at epoch 1, step")
    monkeypatch.delenv("FAULT_INJECT")
    resumed = run(compose("train", overrides)).run_dir
    assert manifest(resumed)["attempt"] == 2
    assert (resumed / "csv" / "metrics.csv").read_text() == (reference / "csv" / "metrics.csv").read_text()
    assert json.loads((resumed / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
