"""Baselines read one way from metrics.json, whichever shape the run wrote."""
from __future__ import annotations

from factory.rundir.baselines import baseline_metrics, label, metric_sections

NEW = {"val": {"val/auroc": 0.9}, "test": {"test/auroc": 0.88},
       "baseline": {"logistic_regression": {"auroc": 0.85}, "hist_gradient_boosting": {"auroc": 0.87}}}


def test_the_new_shape_reads_as_written():
    assert baseline_metrics(NEW) == NEW["baseline"]


def test_an_old_runs_flat_baseline_reads_as_logistic_regression():
    old = {"test": {"test/pr_auc": 0.5}, "baseline": {"pr_auc": 0.41, "auroc": 0.9}}
    assert baseline_metrics(old) == {"logistic_regression": {"pr_auc": 0.41, "auroc": 0.9}}


def test_no_baseline_is_empty():
    assert baseline_metrics({"test": {"test/auroc": 0.9}, "checkpoint": "x.ckpt"}) == {}
    assert baseline_metrics({"baseline": None}) == {}


def test_sections_put_each_baseline_beside_val_and_test():
    sections = metric_sections({**NEW, "checkpoint": "x.ckpt"})
    assert list(sections) == ["val", "test", "logistic_regression", "hist_gradient_boosting"]
    assert list(metric_sections(NEW, readable=True))[2:] == ["logistic regression", "gradient boosting"]
    assert [label(name) for name in list(sections)[2:]] == ["logistic regression", "gradient boosting"]
