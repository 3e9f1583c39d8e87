"""What a notebook shows of a run: LoadedRun's short repr, metrics_table's display, a per-epoch history."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

import factory
from factory.analysis.notebook import LoadedRun, metrics_table, tidy_history
from factory.rundir.manifest import RunRecord

METRICS = {"val": {"val/pr_auc": 0.41234, "val/loss": 0.2}, "test": {"test/pr_auc": 0.39871, "test/loss": 0.25},
           "baseline": {"logistic_regression": {"pr_auc": 0.35, "auroc": 0.9},
                        "hist_gradient_boosting": {"pr_auc": 0.37, "auroc": 0.91}}}


def _run(metrics: dict, **record) -> LoadedRun:
    manifest = RunRecord(run_id="2026-12-07_01-37-06_383a8f", task_name="fraud_detection", run_dir="/runs/x",
                         status="completed", monitor={"metric": "val/pr_auc", "mode": "max", "best": 0.41234},
                         **record)
    return LoadedRun(Path("/runs/x"), manifest, OmegaConf.create({"model": {"hidden": [16] * 50}}), metrics)


def test_repr_is_a_few_lines_of_id_task_status_and_headline_metrics():
    text = repr(_run(METRICS))
    assert text.splitlines() == [
        "LoadedRun 2026-12-07_01-37-06_383a8f: fraud_detection, binary, completed",
        "  val/pr_auc 0.4123 (best, max) · test/pr_auc 0.3987 · logistic regression 0.35 · gradient boosting 0.37",
        "  /runs/x",
    ]


def test_repr_of_a_failed_run_gives_the_error_first_line():
    text = repr(_run({}, error="DataError: no column 'amount'\nTraceback ..."))
    assert "task unknown" in text.splitlines()[0]
    assert "  error: DataError: no column 'amount'" in text.splitlines() and "Traceback" not in text


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_task_is_read_back_from_the_metrics_the_task_logs(task):
    from factory.models.metrics import task_metrics

    names = task_metrics(task, 3).keys()  # what SupervisedModel logs as val/<name>
    assert _run({"val": {f"val/{name}": 0.5 for name in names}}).task == task


def test_metrics_table_keeps_floats_and_shows_a_dash_for_a_missing_metric():
    table = factory.metrics_table(METRICS)
    assert list(table.columns) == ["val", "test", "logistic_regression", "hist_gradient_boosting"]
    assert np.isnan(table.loc["loss", "logistic_regression"])  # the values still compute
    assert table.loc["pr_auc", "test"] - table.loc["pr_auc", "logistic_regression"] == pytest.approx(0.04871)
    for shown in (repr(table), table._repr_html_()):
        assert "NaN" not in shown and "—" in shown and "0.4123" in shown
    assert type(table.round(2)) is pd.DataFrame  # only the display differs
    assert "metrics_table" in factory.__all__ and factory.metrics_table is metrics_table


def test_metrics_table_of_an_old_run_names_its_flat_baseline():
    table = factory.metrics_table({"test": {"test/auroc": 0.9}, "baseline": {"auroc": 0.88}})
    assert list(table.columns) == ["test", "logistic_regression"]


def test_history_keeps_epoch_level_values_only():
    # As the CSV logger writes a multiclass run: train/loss on logging steps, train/loss_epoch at epoch end.
    steps = pd.DataFrame({"epoch": [0, 0, 0, 1, 1, 1], "step": [9, 17, 17, 19, 35, 35],
                          "train/loss": [0.9, np.nan, np.nan, 0.4, np.nan, np.nan],
                          "val/loss": [np.nan, 1.0, np.nan, np.nan, 0.2, np.nan],
                          "train/loss_epoch": [np.nan, np.nan, 1.1, np.nan, np.nan, 0.3],
                          "train/acc_step": [0.5, np.nan, np.nan, 0.6, np.nan, np.nan]})
    history = tidy_history(steps)
    assert list(history.columns) == ["epoch", "step", "val/loss", "train/loss_epoch"]
    assert history["train/loss_epoch"].tolist() == [1.1, 0.3]
