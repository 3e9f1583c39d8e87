"""factory.analysis.hyperparameters: which config keys compare counts, on real composed configs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from factory import compose
from factory.analysis import compare
from factory.analysis.hyperparameters import differing_hyperparameters, interpolated_keys, is_hyperparameter
from factory.sweeps.results import differing_config

# Two runs as a user starts them: other logger, other report, one more epoch.
RUN_A = ["experiment=diagnosis", "logger=csv", "report=run_report", "trainer.max_epochs=2"]
RUN_B = ["experiment=diagnosis", "logger=tensorboard", "report=compare_runs", "trainer.max_epochs=3"]


def _composed(overrides: list[str]):
    """(resolved, unresolved): what a run writes to config.yaml and .hydra/config.yaml."""
    unresolved = compose("train", overrides)
    resolved = OmegaConf.create(OmegaConf.to_container(unresolved, resolve=True))
    return resolved, unresolved


@pytest.fixture(scope="module")
def two_runs():
    return {"a": _composed(RUN_A), "b": _composed(RUN_B)}


@pytest.mark.parametrize("with_hydra_config", [True, False], ids=["hydra-config", "project-config"])
def test_only_max_epochs_counts_between_runs_differing_in_logger_report_and_epochs(two_runs, with_hydra_config):
    resolved = {label: pair[0] for label, pair in two_runs.items()}
    unresolved = {label: pair[1] for label, pair in two_runs.items()} if with_hydra_config else None
    # every differing key, as compare counted them before: logger, report, the derived T_max
    naive = set(differing_config(resolved).columns)
    assert {"model.scheduler.T_max", "logger._target_", "report.name"} <= naive

    frame = differing_hyperparameters(resolved, unresolved)
    assert list(frame.columns) == ["trainer.max_epochs"]
    assert frame["trainer.max_epochs"].tolist() == [2, 3]


def test_a_derived_key_set_explicitly_counts_at_its_source_and_where_set():
    a, a_raw = _composed(["experiment=diagnosis", "seed=1"])
    b, b_raw = _composed(["experiment=diagnosis", "seed=2", "data.split_seed=7"])
    frame = differing_hyperparameters({"a": a, "b": b}, {"a": a_raw, "b": b_raw})
    # data.source.seed follows seed in both (derived); data.split_seed is set by hand in b
    assert list(frame.columns) == ["seed", "data.split_seed"]
    assert "data.split_seed" in interpolated_keys(a_raw) and "data.split_seed" not in interpolated_keys(b_raw)


@pytest.mark.parametrize(("key", "counts"), [
    ("model.optimizer.lr", True), ("model.net._target_", True), ("model.net.hidden_dims", True),
    ("data.source.rows", True), ("data.batch_size", True), ("data.val_fraction", True), ("seed", True),
    ("trainer.max_epochs", True), ("trainer.precision", True), ("trainer.accumulate_grad_batches", True),
    ("trainer.gradient_clip_val", True), ("strategy._target_", True), ("callbacks.early_stopping.patience", True),
    ("model.optimizer._partial_", False), ("data.num_workers", False), ("trainer.devices", False),
    ("trainer.log_every_n_steps", False), ("trainer.enable_progress_bar", False), ("logger._target_", False),
    ("logger.version", False), ("report.parameters.run_dir", False), ("reports", False),
    ("paths.data_dir", False), ("callbacks.model_checkpoint.filename", False), ("monitor.metric", False),
    ("hydra.job.name", False), ("task_name", False), ("tracking.log_checkpoint", False),
])
def test_the_rule_key_by_key(key, counts):
    assert is_hyperparameter(key) is counts


def test_a_sweeps_searched_params_count_whatever_their_key(tmp_path: Path):
    trials = [{"number": n, "overrides": [f"trainer.log_every_n_steps={steps}"],
               "params": {"trainer.log_every_n_steps": steps}, "status": "completed", "value": value,
               "run_dir": None, "run_id": None, "error": None, "started_at": None, "finished_at": None}
              for n, (steps, value) in enumerate([(5, 0.3), (50, 0.4)])]
    (tmp_path / "sweep.json").write_text(json.dumps({
        "version": 1, "kind": "grid", "status": "completed", "objective": {"metric": "val/loss", "mode": "min"},
        "trials": trials, "best": None}))
    comparison = compare.select(sweep_dir=tmp_path)
    assert not is_hyperparameter("trainer.log_every_n_steps")  # bookkeeping by the rule ...
    assert list(comparison.hyperparameters.columns) == ["trainer.log_every_n_steps"]  # ... searched: counted
    assert comparison.metric_vs_hyperparameters() is not None


def test_a_sweep_read_from_its_runs_counts_only_their_hyperparameters(tmp_path: Path):
    from tests.unit.analysis.test_compare import make_run

    sweep = tmp_path / "multirun"
    for n, lr in enumerate([0.1, 0.01]):
        run_dir = make_run(sweep / f"{n}_2026-11-24_10-00-00_abcdef", "diagnosis", lr, 0.5 + n / 10)
        config = OmegaConf.load(run_dir / "config.yaml")
        config.logger = {"_target_": "pytorch_lightning.loggers.CSVLogger", "version": f"v{n}"}  # differs too
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(config))
    comparison = compare.select(sweep_dir=sweep)  # no sweep.json: the params are the differing keys
    assert comparison.sweep.kind == "runs" and "logger.version" in comparison.sweep.params
    assert list(comparison.hyperparameters.columns) == ["model.optimizer.lr"]
