"""factory.analysis.plots for every task: one-vs-rest curves, regression figures, diagnostics, one-line errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from factory.analysis import plots
from factory.analysis.figure import Figure

RNG = np.random.default_rng(0)
NAMES = ["cat", "dog", "owl"]
Y3 = np.repeat([0, 1, 2], 20)
# Probabilities leaning to the true class: (60, 3), rows sum to 1.
LOGITS = RNG.normal(size=(60, 3)) + 2.0 * np.eye(3)[Y3]
P3 = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)
Y2 = np.array([0] * 30 + [1] * 10)
SCORE2 = np.clip(0.4 * Y2 + RNG.uniform(0, 0.6, len(Y2)), 0, 1)


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _legend_clear_of_axes(fig) -> bool:
    """Every axes legend lies outside its axes (display coordinates, after layout)."""
    fig.draw_without_rendering()
    return all(not ax.get_legend().get_window_extent().overlaps(ax.get_window_extent())
               for ax in fig.axes if ax.get_legend() is not None)


@pytest.mark.parametrize("function,measure,short", [(plots.roc_curve, roc_auc_score, "AUC"),
                                                     (plots.pr_curve, average_precision_score, "AP")])
def test_one_vs_rest_curves_per_class_and_averages(function, measure, short):
    fig = function(Y3, P3, labels=NAMES)
    ax = fig.axes[0]
    legend = _legend(ax)
    assert [entry.split(" (")[0] for entry in legend[:5]] == NAMES + ["micro-average", "macro-average"]
    onehot = np.eye(3)[Y3]
    assert legend[0] == f"cat ({short} {measure(onehot[:, 0], P3[:, 0]):.3f})"
    assert legend[3] == f"micro-average ({short} {measure(onehot, P3, average='micro'):.3f})"
    assert legend[4] == f"macro-average ({short} {measure(onehot, P3, average='macro'):.3f})"
    assert ax.get_title().endswith("(one-vs-rest)")
    assert _legend_clear_of_axes(fig)


def test_one_vs_rest_takes_a_frame_of_prob_columns_and_names_classes_from_it():
    frame = pd.DataFrame(P3, columns=[f"prob_{name}" for name in NAMES])
    legend = _legend(plots.roc_curve(Y3, frame).axes[0])
    assert [entry.split(" (")[0] for entry in legend[:3]] == NAMES


def test_one_vs_rest_skips_a_class_absent_from_y_true():
    y = np.where(Y3 == 2, 0, Y3)  # no owl: its one-vs-rest curve is undefined
    legend = _legend(plots.pr_curve(y, P3, labels=NAMES).axes[0])
    assert [entry.split(" (")[0] for entry in legend] == ["cat", "dog", "micro-average", "macro-average"]


def test_multiclass_calibration_per_class_with_brier_scores():
    fig = plots.calibration_curve(Y3, P3, bins=5, labels=NAMES)
    curve, counts = fig.axes
    legend = _legend(curve)
    assert legend[0] == "perfectly calibrated"
    assert [entry.split(" (")[0] for entry in legend[1:5]] == NAMES + ["micro-average"]
    assert legend[5].startswith("macro-average Brier ")
    assert sum(p.get_height() for p in counts.patches) == P3.size  # every (row, class) probability
    assert _legend_clear_of_axes(fig)


def test_binary_curves_name_the_positive_class_and_keep_legends_off_the_data():
    for function in (plots.roc_curve, plots.pr_curve, plots.calibration_curve):
        fig = function(Y2, SCORE2, labels=["legit", "fraud"])
        assert isinstance(fig, Figure)
        assert "fraud" in fig.axes[0].get_title()
        assert _legend_clear_of_axes(fig)
    assert plots.roc_curve(Y2, SCORE2).axes[0].get_title() == "ROC curve"  # no names: no claim


@pytest.mark.parametrize("call,message", [
    (lambda: plots.roc_curve(Y3, P3[:, 0]), "score has one column but y_true has classes 0, 1, 2"),
    (lambda: plots.pr_curve(Y2, SCORE2[:-1]), "y_true has 40 rows but score has 39"),
    (lambda: plots.pr_curve(Y2, np.where(Y2 == 1, np.nan, SCORE2)), "score has 10 NaN value(s) (rows 30, 31"),
    (lambda: plots.roc_curve(Y3, P3, labels=["cat", "dog"]), "score has 3 columns but labels names 2 classes"),
    (lambda: plots.roc_curve(Y3 + 1, P3), "y_true has class index 3 but score has only 3 columns"),
    (lambda: plots.roc_curve(np.zeros(40, int), SCORE2), "y_true has one class only (0)"),
    (lambda: plots.calibration_curve(Y2, SCORE2 * 3), "needs probabilities in [0, 1]"),
    (lambda: plots.roc_curve([0.5, 1], [0.1, 0.2]), "y_true must hold class indices 0..k-1"),
    (lambda: plots.confusion_matrix([0, 3], [0, 1], labels=["a", "b"]), "y_true has class index 3 but labels"),
    (lambda: plots.residuals([1.0, 2.0], [1.0]), "y_true has 2 rows but y_pred has 1"),
    (lambda: plots.predicted_vs_actual([1.0, np.nan], [1.0, 2.0]), "y_true has 1 NaN value(s)"),
])
def test_a_wrong_input_is_one_line_naming_it(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert message in str(error.value) and "\n" not in str(error.value)


def test_predicted_vs_actual_and_residuals():
    actual = np.linspace(0, 10, 50)
    predicted = actual + RNG.normal(scale=0.5, size=50)
    ax = plots.predicted_vs_actual(actual, predicted).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("actual", "predicted", "Predicted vs actual")
    assert _legend(ax)[0].startswith("rows (R² 0.9") and _legend(ax)[1] == "perfect prediction"
    scatter, histogram = plots.residuals(actual, predicted).axes
    assert scatter.get_ylabel() == "actual - predicted"
    assert np.allclose(scatter.collections[0].get_offsets()[:, 1], actual - predicted)
    assert sum(p.get_width() for p in histogram.patches) == 50


def _predictions(task: str) -> pd.DataFrame:
    if task == "multiclass":
        frame = pd.DataFrame({"target": Y3, "label": [NAMES[i] for i in Y3], "prediction": P3.argmax(axis=1),
                              "score": P3.max(axis=1)})
        return frame.assign(**{f"prob_{name}": P3[:, i] for i, name in enumerate(NAMES)})
    if task == "binary":
        return pd.DataFrame({"target": Y2, "label": np.where(Y2 == 1, "fraud", "legit"),
                             "prediction": (SCORE2 >= 0.5).astype(int), "score": SCORE2})
    actual = np.linspace(0, 1, 30)
    return pd.DataFrame({"target": actual, "label": actual, "prediction": actual[::-1], "score": actual[::-1]})


@pytest.mark.parametrize("task,titles", [
    ("binary", ["Confusion matrix", "ROC curve", "Precision-recall curve", "Calibration curve", "Score distribution"]),
    ("multiclass", ["Confusion matrix", "ROC curve (one-vs-rest)", "Precision-recall curve (one-vs-rest)",
                    "Calibration curve (one-vs-rest)"]),
    ("regression", ["Predicted vs actual", "Residuals"]),
])
def test_diagnostics_titles_figures_per_task_with_class_names(task, titles):
    figures = plots.diagnostics(_predictions(task), task)
    assert list(figures) == titles and all(isinstance(f, Figure) for f in figures.values())
    if task != "regression":
        ax = figures["Confusion matrix"].axes[0]
        expected = NAMES if task == "multiclass" else ["legit", "fraud"]
        assert [t.get_text() for t in ax.get_xticklabels()] == expected
        assert [t.get_text() for t in ax.get_yticklabels()] == expected


def test_diagnostics_names_an_unknown_task_and_missing_columns():
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        plots.diagnostics(_predictions("binary"), "ranking")
    with pytest.raises(ValueError, match="lack column.s. score"):
        plots.diagnostics(_predictions("binary").drop(columns="score"), "binary")
    with pytest.raises(ValueError, match="missing prob_bird"):
        plots.diagnostics(_predictions("multiclass"), "multiclass", labels=["cat", "dog", "bird"])


def test_learning_curves_count_epochs_from_one_with_one_legend_entry_per_stage():
    history = pd.DataFrame({"epoch": [0, 1, 2], "train/loss_epoch": [0.9, 0.6, 0.5], "val/loss": [1.0, 0.7, 0.6],
                            "val/accuracy": [0.5, 0.6, 0.7]})
    fig = plots.learning_curves(history)
    loss = fig.axes[0]
    assert list(loss.get_lines()[0].get_xdata()) == [1, 2, 3]  # the console's `epoch 1/3` is epoch 0
    assert all(float(t).is_integer() for t in loss.get_xticks())
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["train", "val"]
    val_colours = {line.get_color() for ax in fig.axes for line in ax.get_lines()
                   if line.get_label().startswith("val/")}
    assert len(val_colours) == 1  # a stage keeps its colour across panels, as the one legend says


def test_figure_renders_as_png_and_names_itself():
    fig = plots.pr_curve(Y2, SCORE2)
    assert fig._repr_png_().startswith(b"\x89PNG")
    assert repr(fig).startswith("<factory Figure 'Precision-recall curve', ") and "<Figure size" not in repr(fig)


def test_learning_curves_never_mix_a_step_value_with_the_epoch_value():
    history = pd.DataFrame({"epoch": [0, 1], "train/loss": [0.9, 0.4], "train/loss_epoch": [1.1, 0.3],
                            "val/loss": [1.0, 0.2]})
    (loss,) = plots.learning_curves(history).axes
    assert [line.get_label() for line in loss.get_lines()] == ["train/loss_epoch", "val/loss"]
