"""What a reader of the compare and sweep reports sees: titles, labels, rounded tables, figures
that hold mixed types and keep their legend and labels inside the figure, off the data."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from factory.analysis import compare
from tests.unit.analysis import test_compare
from tests.unit.analysis.test_compare import make_run

sweep_dir = test_compare.sweep_dir  # the 3-trial sweep fixture (2 completed, 1 failed)


@pytest.mark.parametrize(("value", "text"), [
    (0.123456789, "0.1235"), (0.30000000000000004, "0.3"), (1234567.0, "1.235e+06"), (12, "12"),
    (None, "—"), (math.nan, "—"), (True, "True"), ("32-true", "32-true"),
    (pd.Timestamp("2026-12-07T01:36:52.123+00:00"), "2026-12-07 01:36:52"),
    ("2026-12-07T01:59:57+00:00", "2026-12-07 01:59:57"),  # sweep.json / run.json times are text
    ("2026-12-07", "2026-12-07"), ("2026-12-07T01:59:57 and more", "2026-12-07T01:59:57 and more"),
])
def test_values_read_as_a_reader_wants(value, text):
    assert compare.format_value(value) == text


def test_run_labels_are_short_unique_and_never_a_bare_number():
    assert compare.run_labels(["2026-12-07_01-36-52_4ff3d6", "0_2026-12-07_01-38-53_c156bc", "1"]) == [
        "4ff3d6", "c156bc #0", "run 1"]
    # the same random part twice (two copies of a run): the whole ids
    assert compare.run_labels(["2026-12-07_01-36-52_4ff3d6", "2026-12-08_01-36-52_4ff3d6"]) == [
        "2026-12-07_01-36-52_4ff3d6", "2026-12-08_01-36-52_4ff3d6"]


def test_mixed_types_are_categories_with_readable_labels_not_a_crash():
    # what a key that is a float in one run, text in another and unset in a third gives
    hyperparameters = pd.DataFrame({"model.net.dropout": [0.1, "high", None], "model.optimizer.lr": [1e-4, 1e-2, 3e-3]},
                                   index=["aaaaaa", "bbbbbb", "cccccc"])
    values = pd.Series([0.5, 0.7, 0.6], index=hyperparameters.index, name="val/pr_auc")
    fig = compare.metric_vs_hyperparameters(hyperparameters, values, best="bbbbbb")
    mixed, numeric = fig.axes
    assert [t.get_text() for t in mixed.get_xticklabels()] == ["0.1", "high", "(unset)"]
    assert numeric.get_xscale() == "log"
    _assert_legend_and_text_off_the_data(fig)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["aaaaaa", "bbbbbb", "cccccc", "best (bbbbbb)"]


def test_many_runs_are_one_colour_and_only_the_best_is_named():
    index = [f"trial {n}" for n in range(30)]
    hyperparameters = pd.DataFrame({"model.optimizer.lr": [10 ** -(1 + n / 10) for n in range(30)]}, index=index)
    values = pd.Series([n / 30 for n in range(30)], index=index, name="val/loss")
    fig = compare.metric_vs_hyperparameters(hyperparameters, values, best="trial 0")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["best (trial 0)"]


def _assert_legend_and_text_off_the_data(fig):
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    figure_box = fig.bbox
    for legend in fig.legends:
        box = legend.get_window_extent(renderer)
        assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes), "legend over a panel"
        assert figure_box.contains(box.x0, box.y0) and figure_box.contains(box.x1, box.y1)
    for ax in fig.axes:
        assert not ax.texts, "text drawn over the data (a run id that can leave its panel)"


def test_a_comparison_of_runs_reads_as_a_document(tmp_path):
    outputs = tmp_path / "outputs" / "diagnosis"
    make_run(outputs / "2026-11-24_09-00-00_aaaaaa", "diagnosis", 0.01, 0.912345678)
    make_run(outputs / "2026-11-24_09-00-01_bbbbbb", "diagnosis", "high", None)  # a string lr, no metrics
    comparison = compare.select(experiment="diagnosis", root=tmp_path)
    assert comparison.title() == "Compare runs: diagnosis — 2 runs, metric val/pr_auc (max)"
    assert "**Best: aaaaaa** — val/pr_auc = 0.9123 (lr=0.01)" in comparison.headline()

    for table in (comparison.summary_table(), comparison.metrics_table(), comparison.hyperparameter_table(),
                  comparison.best()):
        cells = table.to_numpy().ravel().tolist()
        assert all(isinstance(c, str) and c.strip() for c in cells), table  # no empty cell, no NaN
        assert "nan" not in " ".join(cells).lower()
        assert not any(len(c) > 8 and c.replace(".", "").isdigit() for c in cells), table  # no 16-digit floats
    assert list(comparison.metrics_table().columns) == ["bbbbbb", "aaaaaa"]  # newest first, short ids
    assert comparison.metrics_table().loc["val/pr_auc"].tolist() == ["—", "0.9123"]
    assert comparison.hyperparameter_table()["model.optimizer.lr"].tolist() == ["high", "0.01"]
    assert comparison.metric_per_run() is None  # one value: nothing to compare


def test_a_sweep_is_titled_as_one_with_its_best_trial_on_top(sweep_dir):
    comparison = compare.select(sweep_dir=sweep_dir)
    assert comparison.title() == "Sweep: fraud_detection — 3 trials, objective val/pr_auc (max)"
    headline = comparison.headline()
    assert headline.startswith("# Sweep: fraud_detection")
    assert "**Best: trial 1** — val/pr_auc = 0.45 (lr=0.001)" in headline
    assert "2 completed, 1 failed" in headline
    # the whole command (a table cell would cut its overrides) and each failed trial's error
    assert "Command: `python scripts/train.py -m hparams_search=optuna experiment=fraud_detection`" in headline
    assert "- trial 2 failed: `RuntimeError: diverged`" in headline
    assert "command" not in comparison.sweep_summary().index
    summary = comparison.summary_table()
    assert summary.loc["trial 2", "error"] == "RuntimeError: diverged" and summary.loc["trial 0", "error"] == "—"
    _assert_legend_and_text_off_the_data(comparison.learning_curves())
