"""factory.compare with two baselines per run: a column each, and the best run shows each baseline's value
of the compared metric (keys ``baseline/<name>/<metric>``), old runs' flat baseline included."""
from __future__ import annotations

import json

from factory.analysis import compare
from factory.rundir import manifest
from tests.unit.analysis.test_compare import make_run

BASELINES = {"logistic_regression": {"pr_auc": 0.41, "auroc": 0.9},
             "hist_gradient_boosting": {"pr_auc": 0.43, "auroc": 0.91}}


def test_each_baseline_is_a_metric_column_and_beside_the_best(tmp_path):
    outputs = tmp_path / "outputs" / "fraud_detection"
    for name, pr_auc, baselines in [("2026-11-24_09-00-00_aaaaaa", 0.5, BASELINES),
                                    ("2026-11-24_09-00-01_bbbbbb", 0.45, {"pr_auc": 0.4})]:  # an old run's shape
        run_dir = make_run(outputs / name, "fraud_detection", 0.01, pr_auc)
        metrics = {**json.loads((run_dir / manifest.METRICS).read_text()), "baseline": baselines}
        manifest.save_metrics(run_dir, metrics)

    comparison = compare.select(experiment="fraud_detection", root=tmp_path)
    assert {"baseline/logistic_regression/pr_auc", "baseline/hist_gradient_boosting/auroc"} <= set(
        comparison.metrics.columns)
    assert comparison.metrics.loc["bbbbbb", "baseline/logistic_regression/pr_auc"] == 0.4
    best = comparison.best()
    assert best.columns == ["best: aaaaaa"]
    shown = best["best: aaaaaa"]
    assert (shown["val/pr_auc"], shown["baseline/logistic_regression/pr_auc"],
            shown["baseline/hist_gradient_boosting/pr_auc"]) == ("0.5", "0.41", "0.43")
    assert "baseline/hist_gradient_boosting/auroc" not in shown.index  # only the compared metric
