"""factory.analysis.plots on tiny synthetic arrays: figures with the expected axes, lines and labels."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score

from factory.analysis import plots

RNG = np.random.default_rng(0)
Y = np.array([0] * 40 + [1] * 10)
SCORE = np.clip(0.3 * Y + RNG.uniform(0, 0.7, len(Y)), 0, 1)


def _labels(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines()]


def test_learning_curves_one_panel_per_metric_one_line_per_stage():
    history = pd.DataFrame({"epoch": [0, 1, 2], "step": [5, 10, 15], "lr-AdamW": [1e-3, 5e-4, 1e-4],
                            "train/loss_epoch": [0.9, 0.6, 0.5], "val/loss": [1.0, 0.7, 0.65],
                            "val/pr_auc": [0.2, 0.3, 0.35]})
    fig = plots.learning_curves(history)
    assert isinstance(fig, Figure)
    loss, pr_auc = fig.axes
    assert loss.get_title() == "loss" and loss.get_xlabel() == "epoch"
    assert _labels(loss) == ["train/loss_epoch", "val/loss"]
    assert _labels(pr_auc) == ["val/pr_auc"]
    assert list(loss.get_lines()[1].get_ydata()) == [1.0, 0.7, 0.65]


def test_learning_curves_selects_metrics_and_names_unknown_ones():
    history = pd.DataFrame({"epoch": [0, 1], "val/loss": [1.0, 0.7], "val/auroc": [0.6, 0.7]})
    assert [ax.get_title() for ax in plots.learning_curves(history, ["auroc"]).axes] == ["auroc"]
    with pytest.raises(ValueError, match="no metric 'f1'"):
        plots.learning_curves(history, ["f1"])


def test_confusion_matrix_counts_and_labels():
    fig = plots.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], labels=["a", "b", "c"])
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    cells = [t.get_text() for t in ax.texts]
    assert cells == ["1", "1", "0", "0", "1", "0", "1", "0", "2"]  # row-major: true x predicted


def test_roc_curve_has_model_and_chance_lines():
    ax = plots.roc_curve(Y, SCORE).axes[0]
    model, chance = _labels(ax)
    assert model.startswith("model (AUC ") and chance == "chance"
    assert ax.get_xlabel() == "false positive rate" and ax.get_ylabel() == "true positive rate"


def test_pr_curve_shows_prevalence():
    ax = plots.pr_curve(Y, SCORE).axes[0]
    labels = _labels(ax)
    assert labels[0].startswith("model (AP ")
    assert labels[1] == "prevalence (0.200)"
    assert ax.get_lines()[1].get_ydata()[0] == pytest.approx(0.2)


def test_calibration_curve_has_reliability_and_counts_panels():
    curve, counts = plots.calibration_curve(Y, SCORE, bins=5).axes
    assert _labels(curve)[0] == "perfectly calibrated" and _labels(curve)[1].startswith("model (Brier ")
    assert counts.get_xlabel() == "predicted probability"
    assert sum(p.get_height() for p in counts.patches) == len(Y)


def test_score_distribution_one_histogram_per_class():
    ax = plots.score_distribution(Y, SCORE, labels=["legit", "fraud"]).axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["legit (n=40)", "fraud (n=10)"]
    assert ax.get_xlabel().startswith("score")


def _segments() -> pd.DataFrame:
    return pd.DataFrame({"channel": ["web"] * 25 + ["store"] * 20 + ["phone"] * 5,
                         "target": np.r_[Y[:20], Y[40:45], Y[20:40], [0] * 5],
                         "score": np.r_[SCORE[:20], SCORE[40:45], SCORE[20:40], [0.1] * 5]})


def test_segment_metrics_table_marks_undefined_segments():
    table = plots.segment_metrics(_segments(), "channel")
    assert table["segment"].tolist() == ["phone", "store", "web"]
    assert table["rows"].tolist() == [5, 20, 25]
    assert table["positives"].tolist() == [0, 0, 5]
    assert table["value"].iloc[:2].isna().all()  # no positive: PR-AUC undefined, not 0
    web = _segments().query("channel == 'web'")
    assert table["value"].iloc[2] == pytest.approx(average_precision_score(web["target"], web["score"]))
    accuracy = plots.segment_metrics(_segments(), "channel", metric="accuracy")["value"]
    assert accuracy.iloc[0] == 1.0  # scores 0.1 -> predicted 0, all true 0


def test_metrics_by_segment_bars_and_overall_line():
    fig = plots.metrics_by_segment(_segments(), "channel", metric="auroc")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["phone", "store", "web"]
    assert len(ax.patches) == 3
    assert _labels(ax)[0].startswith("overall (")
    assert ax.get_title() == "auroc by channel" and ax.get_xlabel() == "channel"
    with pytest.raises(ValueError, match="unknown metric"):
        plots.metrics_by_segment(_segments(), "channel", metric="lift")
