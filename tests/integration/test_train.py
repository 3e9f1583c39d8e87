"""factory.training.recipe.run end to end on small data: the run directory is the contract."""
from __future__ import annotations

import json

import pytest
import torch

from factory import compose
from factory.training.recipe import run
from tests.integration.helpers import FAST_FRAUD, manifest, run_dirs
from tests.integration.wandb_log import OfflineRun


@pytest.fixture(scope="module")
def fraud_run(tmp_path_factory):
    """One small fraud run shared by the assertions below (its own FACTORY_ROOT)."""
    root = tmp_path_factory.mktemp("fraud")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACTORY_ROOT", str(root))
        return run(compose("train", FAST_FRAUD))


def test_run_directory_has_every_artifact(fraud_run):
    run_dir = fraud_run.run_dir
    assert run_dir.parent.name == "fraud_detection"
    for name in ("config.yaml", "run.json", "metrics.json", "csv/metrics.csv",
                 "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (run_dir / name).is_file(), name


def test_manifest_records_provenance(fraud_run):
    record = manifest(fraud_run.run_dir)
    assert record["status"] == "completed" and record["error"] is None
    assert record["run_id"] == fraud_run.run_dir.name
    assert record["git"] is not None and len(record["git"]["commit"]) == 40
    assert {"python", "torch", "pytorch-lightning", "factory"} <= set(record["versions"])
    assert record["seed"] == 42
    assert record["data"]["source"] == "fraud"
    assert len(record["data"]["fingerprint"]) == 64
    assert sum(record["data"]["rows"].values()) == 3000
    assert record["strategy"] == {"name": "single_device", "world_size": 1}
    assert record["best_checkpoint"] == str(fraud_run.best_checkpoint)
    assert record["monitor"]["metric"] == "val/pr_auc"
    assert record["started_at"] <= record["ended_at"]


def test_metrics_json_has_val_test_and_baseline(fraud_run):
    metrics = json.loads((fraud_run.run_dir / "metrics.json").read_text())
    assert {"val/pr_auc", "val/auroc", "val/accuracy", "val/f1", "val/loss"} <= set(metrics["val"])
    assert {"test/pr_auc", "test/auroc", "test/accuracy", "test/f1"} <= set(metrics["test"])
    for baseline in ("logistic_regression", "hist_gradient_boosting"):  # the preset's baselines, each by name
        assert {"pr_auc", "auroc", "accuracy", "f1"} == set(metrics["baseline"][baseline])
    assert metrics == fraud_run.metrics
    assert fraud_run.monitored_value == metrics["val"]["val/pr_auc"]


def test_loaded_model_predicts(fraud_run):
    model = fraud_run.load_model()
    spec = model.spec
    x_num = torch.zeros(3, spec.n_numeric)
    x_cat = torch.zeros(3, len(spec.embed_cardinalities), dtype=torch.long)
    assert model(x_num, x_cat).shape == (3, 1)


def test_same_seed_gives_identical_metrics():
    overrides = FAST_FRAUD + ["data.source.rows=1500", "trainer.max_epochs=1", "baseline=null"]
    first, second = run(compose("train", overrides)), run(compose("train", overrides))
    assert first.run_dir != second.run_dir
    assert first.metrics == second.metrics


def test_multiclass_and_images(isolated_env):
    result = run(compose("train", ["experiment=digits", "logger=csv", "trainer.max_epochs=1"]))
    assert {"test/accuracy", "test/f1_macro"} <= set(result.metrics["test"])
    assert manifest(result.run_dir)["data"]["rows"]["test"] > 300


def test_debug_trainer_runs_one_batch(isolated_env):
    result = run(compose("train", ["trainer=debug", "logger=csv", "data.source.rows=2000"]))
    assert result.status == "completed" and result.best_checkpoint is None


def test_caller_config_is_not_mutated(isolated_env):
    cfg = compose("train", ["trainer=debug", "logger=csv", "data.source.rows=2000"])
    before = cfg.paths.run_dir
    run(cfg)
    assert cfg.paths.run_dir == before


def test_wandb_logger_writes_offline_run(isolated_env):
    result = run(compose("train", ["logger=wandb", "data.source.rows=2000", "trainer.max_epochs=1"]))
    offline_runs = list((result.run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    logged = OfflineRun(offline_runs[0])
    assert logged.summary["manifest"]["status"] == "completed" and logged.exit_code == 0
    assert logged.artifacts == []  # tracking.log_checkpoint is off by default
    assert (result.run_dir / "csv" / "metrics.csv").is_file()  # CSV is always written
    assert run_dirs(isolated_env) == [result.run_dir]
