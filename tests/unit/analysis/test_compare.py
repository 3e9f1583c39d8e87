"""factory.analysis.compare and factory.sweeps.results on run directories and a sweep.json written here.

The run directories are written with the same code training uses (``RunRecord``,
``save_metrics``) and hold the files a run leaves: run.json, metrics.json, config.yaml,
csv/metrics.csv.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from factory.analysis import compare
from factory.rundir import manifest
from factory.errors import FactoryError
from factory.sweeps.results import differing_config, load_sweep, minimizes

LRS = {0: 0.1, 1: 0.001, 2: 0.01}
VALUES = {0: 0.30, 1: 0.45}  # trial 2 failed


def make_run(run_dir: Path, task: str, lr: float, pr_auc: float | None, status: str = "completed") -> Path:
    """A run directory as training leaves it (2 logged epochs)."""
    run_dir.mkdir(parents=True)
    record = manifest.RunRecord.begin(run_dir, task, seed=42, tags=[])
    record.monitor = {"metric": "val/pr_auc", "mode": "max", "best": pr_auc}
    record.data = {"source": "fraud", "fingerprint": "ab" * 32, "rows": {"train": 70, "val": 15, "test": 15}}
    config = {"task_name": task, "seed": 42, "model": {"optimizer": {"lr": lr}, "net": {"hidden_dims": [16]}},
              "paths": {"run_dir": str(run_dir)}}
    (run_dir / manifest.CONFIG).write_text(OmegaConf.to_yaml(config))
    if pr_auc is not None:
        manifest.save_metrics(run_dir, {"val": {"val/pr_auc": pr_auc, "val/loss": 1 - pr_auc},
                                        "test": {"test/pr_auc": pr_auc - 0.01}})
        (run_dir / "csv").mkdir()
        (run_dir / "csv" / "metrics.csv").write_text(
            "epoch,step,train/loss,val/pr_auc\n0,9,0.9,\n0,9,,{:.3f}\n1,19,0.7,\n1,19,,{:.3f}\n".format(
                pr_auc / 2, pr_auc))
    record.finish(status, None if status == "completed" else RuntimeError("diverged"))
    return run_dir


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    """A 3-trial Optuna sweep: two completed, one failed before writing metrics."""
    sweep = tmp_path / "outputs" / "fraud_detection" / "multirun" / "2026-11-24_10-00-00"
    trials = []
    for number, lr in LRS.items():
        value = VALUES.get(number)
        run_dir = make_run(sweep / str(number), "fraud_detection", lr, value,
                           "completed" if value is not None else "failed")
        trials.append({
            "number": number, "overrides": [f"model.optimizer.lr={lr}"], "params": {"model.optimizer.lr": lr},
            "status": "completed" if value is not None else "failed", "value": value,
            "run_dir": str(run_dir) if value is not None else None,
            "run_id": run_dir.name if value is not None else None,
            "error": None if value is not None else "RuntimeError: diverged",
            "started_at": "2026-11-24T10:00:0%dZ" % number, "finished_at": "2026-11-24T10:01:0%dZ" % number})
    journal = {"version": 1, "sweep_dir": str(sweep), "kind": "optuna",
               "command": "python scripts/train.py -m hparams_search=optuna experiment=fraud_detection",
               "objective": {"metric": "val/pr_auc", "mode": "max"}, "status": "completed",
               "updated_at": "2026-11-24T10:02:00Z", "trials": trials,
               "best": {"number": 1, "value": 0.45, "overrides": ["model.optimizer.lr=0.001"],
                        "params": {"model.optimizer.lr": 0.001}, "run_dir": str(sweep / "1")}}
    (sweep / "sweep.json").write_text(json.dumps(journal))
    return sweep


def test_sweep_json_gives_one_row_per_trial_with_params_status_value_and_run(sweep_dir):
    sweep = load_sweep(sweep_dir)
    assert (sweep.kind, sweep.status, sweep.metric, sweep.mode) == ("optuna", "completed", "val/pr_auc", "max")
    assert sweep.params == ["model.optimizer.lr"]
    trials = sweep.trials
    assert list(trials.index) == [0, 1, 2]
    assert trials["model.optimizer.lr"].tolist() == [0.1, 0.001, 0.01]
    assert trials["status"].tolist() == ["completed", "completed", "failed"]
    assert trials["value"].iloc[:2].tolist() == [0.30, 0.45] and pd.isna(trials.loc[2, "value"])
    assert trials.loc[2, "error"] == "RuntimeError: diverged" and pd.isna(trials.loc[2, "run_dir"])
    assert sweep.best["number"] == 1
    summary = sweep.summary()["value"]
    assert summary["trials completed"] == "2" and summary["trials failed"] == "1"
    assert summary["objective"] == "val/pr_auc (max)"


def test_comparison_of_a_sweep_plots_the_objective_against_each_param_and_names_the_best(sweep_dir):
    comparison = compare.select(sweep_dir=sweep_dir)
    assert comparison.metric == "val/pr_auc" and comparison.mode == "max"
    assert list(comparison.table.index) == ["trial 0", "trial 1", "trial 2"]
    assert set(comparison.runs) == {"trial 0", "trial 1"}  # the failed trial has no run dir
    assert comparison.table.loc["trial 0", "test/pr_auc"] == pytest.approx(0.29)  # from metrics.json
    assert comparison.best().loc["model.optimizer.lr"].iloc[0] == "0.001"
    assert "3 trials" in comparison.describe() and "optuna" in comparison.describe()

    fig = comparison.metric_vs_hyperparameters()
    (ax,) = fig.axes
    assert ax.get_xlabel() == "model.optimizer.lr" and ax.get_ylabel() == "val/pr_auc"
    assert ax.get_xscale() == "log"  # 0.001 .. 0.1
    points = ax.collections[0].get_offsets()
    assert sorted(map(tuple, points.tolist())) == [(0.001, 0.45), (0.1, 0.30)]
    (legend,) = fig.legends  # beside the panels, not over the points
    assert [t.get_text() for t in legend.get_texts()] == ["trial 0", "trial 1", "best (trial 1)"]
    lines = comparison.learning_curves().axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["trial 0: lr=0.1", "trial 1: lr=0.001"]
    assert isinstance(comparison.metric_per_run(), Figure)


def test_another_metric_comes_from_the_runs_metrics(sweep_dir):
    comparison = compare.select(sweep_dir=sweep_dir, metric="val/loss")
    assert comparison.mode == "min"  # a loss: lower is better
    assert comparison.values.dropna().to_dict() == pytest.approx({"trial 0": 0.7, "trial 1": 0.55})
    assert comparison.best().columns == ["best: trial 1"]


def test_a_pruned_trial_is_plotted_but_never_the_best(sweep_dir):
    journal = json.loads((sweep_dir / "sweep.json").read_text())
    journal["trials"][0].update(status="pruned", value=0.9)  # stopped early, on a lucky epoch
    (sweep_dir / "sweep.json").write_text(json.dumps(journal))
    comparison = compare.select(sweep_dir=sweep_dir)
    assert comparison.best_label() == "trial 1"
    assert len(comparison.metric_vs_hyperparameters().axes[0].collections[0].get_offsets()) == 2


def test_a_sweep_that_has_just_started_has_nothing_to_compare_yet(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps({"version": 1, "kind": "optuna", "status": "running",
                                                     "objective": {"metric": "val/loss", "mode": "min"},
                                                     "trials": [], "best": None}))
    comparison = compare.select(sweep_dir=tmp_path)
    assert comparison.table.empty and comparison.best() is None and comparison.metric_per_run() is None
    assert "0 trials in the sweep so far" in comparison.describe()
    assert comparison.sweep_summary().loc["status", "value"] == "running"


def test_a_directory_without_sweep_json_is_read_from_its_runs(sweep_dir):
    (sweep_dir / "sweep.json").unlink()
    sweep = load_sweep(sweep_dir)
    assert sweep.kind == "runs" and sweep.metric == "val/pr_auc" and sweep.mode == "max"
    assert sweep.params == ["model.optimizer.lr"]  # paths.run_dir differs too, but names each run
    assert sweep.trials["status"].tolist() == ["completed", "completed", "failed"]
    assert sweep.trials["value"].iloc[:2].tolist() == [0.30, 0.45]
    assert sweep.best["number"] == 1


def test_runs_by_experiment_and_by_id(tmp_path):
    outputs = tmp_path / "outputs" / "diagnosis"
    first = make_run(outputs / "2026-11-24_09-00-00_aaaaaa", "diagnosis", 0.01, 0.9)
    make_run(outputs / "2026-11-24_09-00-01_bbbbbb", "diagnosis", 0.1, 0.8)
    make_run(tmp_path / "outputs" / "other" / "2026-11-24_09-00-02_cccccc", "other", 0.1, 0.5)

    comparison = compare.select(experiment="diagnosis", root=tmp_path)
    assert sorted(comparison.table.index) == ["aaaaaa", "bbbbbb"]  # short run ids
    assert list(comparison.hyperparameters.columns) == ["model.optimizer.lr"]
    assert comparison.best().columns == ["best: aaaaaa"]
    assert {"val/pr_auc", "test/pr_auc"} <= set(comparison.metrics.columns)

    single = compare.select(run_ids=["aaaaaa"], root=tmp_path)
    assert list(single.table.index) == [first.name.rsplit("_", 1)[-1]]
    assert "nothing to compare" in single.describe()
    assert single.metric_per_run() is None and single.metric_vs_hyperparameters() is None

    newest = compare.select(root=tmp_path)  # nothing named: the newest run's experiment
    assert list(newest.table["experiment"].unique()) == ["other"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"experiment": "nope"}, "experiment='nope': no runs under"),
    ({"run_ids": ["zzzzzz"]}, "no run 'zzzzzz'"),
    ({"sweep_dir": "missing"}, "sweep_dir: missing: no such directory"),
    ({"sweep_dir": ".", "experiment": "x"}, "leave run_ids and experiment unset"),
])
def test_bad_selections_are_named(tmp_path, kwargs, message):
    make_run(tmp_path / "outputs" / "diagnosis" / "2026-11-24_09-00-00_aaaaaa", "diagnosis", 0.01, 0.9)
    with pytest.raises(FactoryError, match=message.replace("(", r"\(")):
        compare.select(root=tmp_path, **kwargs)


def test_empty_directory_and_broken_journal_are_named(tmp_path):
    with pytest.raises(FactoryError, match="no sweep.json and no run.json below it"):
        load_sweep(tmp_path)
    (tmp_path / "sweep.json").write_text('{"version": 1, "trials": [{"status": "completed"}]}')
    with pytest.raises(FactoryError, match=r"trials\[0\] has no trial number"):
        load_sweep(tmp_path)
    (tmp_path / "sweep.json").write_text("{")
    with pytest.raises(FactoryError, match="sweep.json: not readable as JSON"):
        load_sweep(tmp_path)


def test_differing_config_keeps_what_differs_and_drops_own_paths():
    configs = {"a": {"lr": 0.1, "net": {"dims": [8]}, "dir": "/runs/a", "seed": 1},
               "b": {"lr": 0.2, "net": {"dims": [8, 4]}, "dir": "/runs/b", "seed": 1}}
    frame = differing_config(configs, {"a": Path("/runs/a"), "b": Path("/runs/b")})
    assert list(frame.columns) == ["lr", "net.dims"] and frame.loc["b", "net.dims"] == "[8, 4]"
    assert minimizes("val/loss") and minimizes("test/brier") and not minimizes("val/pr_auc")
