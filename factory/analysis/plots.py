"""Figures for notebooks and reports: learning curves and the diagnostics of each task.

Every function returns a ``factory.analysis.figure.Figure`` (a matplotlib Figure that
shows itself as an image in any Jupyter kernel, no ``%matplotlib`` needed) built with the
object API (no pyplot state), so it works under any backend, in a kernel or a papermill
run, stays quiet in a script and never leaks open figures. The math comes from
scikit-learn (``sklearn.metrics``, ``sklearn.calibration``); nothing here computes a
curve by hand. Legends sit outside the axes, so they never cover the data.

Classifier curves take a binary score (P(class 1), one value per row) or per-class
probabilities (an ``(n, k)`` array or DataFrame, ``labels`` the class names in index
order) and then draw one-vs-rest curves per class plus the micro and macro averages.
A wrong input is one ``ValueError`` line naming what is wrong.

Example:
    >>> run = factory.load_run("2026-11-24_03-36-13_203edf")
    >>> preds = run.predictions("test")
    >>> plots.pr_curve(preds["target"], preds["score"])
    >>> for title, figure in plots.diagnostics(preds, "binary").items(): display(figure)
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from factory.analysis.figure import Figure
from factory.analysis.plot_inputs import (binary_names, class_indices, class_scores, one_vs_rest,
                                           regression_values, same_length, step_level)

TASKS = ("binary", "multiclass", "regression")

#: Segment metrics by name: (function of (y_true, y_score_or_pred), needs hard predictions).
_METRICS: dict[str, tuple[str, bool]] = {
    "pr_auc": ("average_precision_score", False),
    "auroc": ("roc_auc_score", False),
    "brier": ("brier_score_loss", False),
    "accuracy": ("accuracy_score", True),
    "f1": ("f1_score", True),
}

def small_multiples(count: int, ncols: int, panel: tuple[float, float]) -> tuple[Figure, list]:
    """A figure of ``count`` panels, ``ncols`` to a row, each ``panel`` inches (width, height).

    Returns:
        The figure and its ``count`` axes, in reading order (spare grid cells removed).
    """
    ncols = min(ncols, count)
    nrows = -(-count // ncols)
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for spare in grid[count:]:
        fig.delaxes(spare)
    return fig, list(grid[:count])


def learning_curves(history, metrics: Sequence[str] | None = None) -> Figure:
    """One panel per metric, one line per stage (train/val), against the epoch.

    Epochs are numbered from 1, as the console prints them (``epoch 1/N`` is Lightning's
    epoch 0). Each stage keeps one colour across panels; one legend below the panels.

    Args:
        history: the per-epoch frame of ``LoadedRun.history`` (an ``epoch`` column and
            ``<stage>/<metric>`` columns), or a ``LoadedRun``.
        metrics: metric names (``["loss", "pr_auc"]``) or full columns (``"val/auroc"``);
            ``None``: every metric in the history.

    Returns:
        The figure; each panel is titled with the metric, each line labelled with its column.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    history = getattr(history, "history", history)
    per_step = step_level(list(history.columns))  # a step's value beside the epoch's reads as two curves
    columns = [c for c in history.columns if "/" in c and c not in per_step]
    panels: dict[str, list[str]] = {}
    for column in columns:
        panels.setdefault(_metric_name(column), []).append(column)
    if metrics is not None:
        wanted = {}
        for name in metrics:
            if name in history.columns:
                wanted.setdefault(_metric_name(name), []).append(name)
            elif name in panels:
                wanted[name] = panels[name]
            else:
                raise ValueError(f"no metric {name!r} in the history; it has {', '.join(sorted(panels))}")
        panels = wanted
    if not panels:
        raise ValueError("the history has no <stage>/<metric> columns to plot")
    fig, axes = small_multiples(len(panels), ncols=3, panel=(4.5, 3.5))
    epochs = history["epoch"] + 1 if "epoch" in history.columns else pd.Series(range(1, len(history) + 1))
    stages = list(dict.fromkeys(column.split("/", 1)[0] for names in panels.values() for column in names))
    colours = {stage: f"C{i}" for i, stage in enumerate(stages)}
    for ax, (name, names) in zip(axes, panels.items()):
        for column in names:
            values = history[column]
            keep = values.notna()
            ax.plot(epochs[keep], values[keep], marker="o", markersize=3, label=column,
                    color=colours[column.split("/", 1)[0]])
        ax.set(title=name, xlabel="epoch", ylabel=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles = [Line2D([], [], color=colours[stage], marker="o", markersize=3, label=stage) for stage in stages]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    fig.suptitle("Learning curves")
    return fig


def confusion_matrix(y_true, y_pred, labels: Sequence | None = None, normalize: str | None = None) -> Figure:
    """Counts (or rates, with ``normalize="true"|"pred"|"all"``) of true against predicted class.

    Args:
        y_true: class indices.
        y_pred: predicted class indices.
        labels: display names of the classes, in index order (``datamodule.class_labels``);
            they label both axes.
    """
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    y_true, y_pred = class_indices(y_true, "y_true"), class_indices(y_pred, "y_pred")
    same_length(y_true, "y_true", y_pred, "y_pred")
    n = len(labels) if labels is not None else int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1
    for values, name in ((y_true, "y_true"), (y_pred, "y_pred")):
        if len(values) and values.max() >= n:
            raise ValueError(f"{name} has class index {int(values.max())} but labels names {n} classes")
    matrix = sk_confusion_matrix(y_true, y_pred, labels=list(range(n)), normalize=normalize)
    names = [str(label) for label in labels] if labels is not None else [str(i) for i in range(n)]
    size = max(4.0, 0.5 * n + 2)
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, label="share of rows" if normalize else "rows")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        text = f"{value:.2f}" if normalize else f"{int(value)}"
        ax.text(j, i, text, ha="center", va="center", color="white" if value > threshold else "black")
    ax.set(xticks=range(n), yticks=range(n), xticklabels=names, yticklabels=names,
           xlabel="predicted", ylabel="true", title="Confusion matrix")
    if max(map(len, names), default=0) * n > 40:  # long names side by side would overlap
        ax.tick_params(axis="x", labelrotation=45)
    return fig


def roc_curve(y_true, score, labels: Sequence | None = None) -> Figure:
    """ROC curve with its AUC, against the chance diagonal.

    Args:
        y_true: class indices.
        score: P(class 1) per row (binary), or per-class probabilities ``(n, k)``: then one
            one-vs-rest curve per class plus the micro average (all class/row pairs pooled)
            and the macro average (the mean of the per-class curves; its AUC the mean AUC).
        labels: class names in index order (default: a DataFrame's columns, else 0..k-1).

    Raises:
        ValueError: one line naming what is wrong with the input (see ``pr_curve``).
    """
    from sklearn.metrics import roc_auc_score, roc_curve as sk_roc_curve

    y_true, score, names = class_scores(y_true, score, labels, "roc_curve")
    fig, ax = _curve_axes(score.ndim == 2)
    if score.ndim == 1:
        fpr, tpr, _ = sk_roc_curve(y_true, score)
        ax.plot(fpr, tpr, label=f"model (AUC {roc_auc_score(y_true, score):.3f})")
    else:
        onehot, present = one_vs_rest(y_true, len(names))
        grid = np.linspace(0, 1, 201)
        tprs = []
        for k in present:
            fpr, tpr, _ = sk_roc_curve(onehot[:, k], score[:, k])
            tprs.append(np.interp(grid, fpr, tpr))
            ax.plot(fpr, tpr, linewidth=1, alpha=0.7,
                    label=f"{names[k]} (AUC {roc_auc_score(onehot[:, k], score[:, k]):.3f})")
        fpr, tpr, _ = sk_roc_curve(onehot.ravel(), score.ravel())
        micro = roc_auc_score(onehot, score, average="micro")
        macro = roc_auc_score(onehot[:, present], score[:, present], average="macro")
        ax.plot(fpr, tpr, color="black", linewidth=2, label=f"micro-average (AUC {micro:.3f})")
        ax.plot(grid, np.mean(tprs, axis=0), color="black", linewidth=2, linestyle=":",
                label=f"macro-average (AUC {macro:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01),
           title="ROC curve" + (" (one-vs-rest)" if score.ndim == 2 else _positive(names)))
    _legend_outside(ax)
    return fig


def pr_curve(y_true, score, labels: Sequence | None = None) -> Figure:
    """Precision-recall curve with its average precision, and the prevalence a random score gets.

    Args:
        y_true: class indices.
        score: P(class 1) per row (binary), or per-class probabilities ``(n, k)``: then one
            one-vs-rest curve per class plus the micro average (pooled) and the macro
            average (the mean of the per-class curves; its AP the mean AP).
        labels: class names in index order (default: a DataFrame's columns, else 0..k-1).

    Raises:
        ValueError: one line: lengths differ, NaN scores, a 1-D score with more than two
            classes in ``y_true``, ``k`` columns but another number of labels, a class index
            with no column, or one class only (the curve is undefined).
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y_true, score, names = class_scores(y_true, score, labels, "pr_curve")
    fig, ax = _curve_axes(score.ndim == 2)
    if score.ndim == 1:
        precision, recall, _ = precision_recall_curve(y_true, score)
        prevalence = float(np.mean(y_true == 1))
        ax.step(recall, precision, where="post",
                label=f"model (AP {average_precision_score(y_true, score):.3f})")
        ax.axhline(prevalence, linestyle="--", color="grey", label=f"prevalence ({prevalence:.3f})")
    else:
        onehot, present = one_vs_rest(y_true, len(names))
        grid = np.linspace(0, 1, 201)
        precisions = []
        for k in present:
            precision, recall, _ = precision_recall_curve(onehot[:, k], score[:, k])
            precisions.append(np.interp(grid, recall[::-1], precision[::-1]))  # recall falls; interp wants it rising
            ax.step(recall, precision, where="post", linewidth=1, alpha=0.7,
                    label=f"{names[k]} (AP {average_precision_score(onehot[:, k], score[:, k]):.3f})")
        precision, recall, _ = precision_recall_curve(onehot.ravel(), score.ravel())
        micro = average_precision_score(onehot, score, average="micro")
        macro = average_precision_score(onehot[:, present], score[:, present], average="macro")
        ax.step(recall, precision, where="post", color="black", linewidth=2, label=f"micro-average (AP {micro:.3f})")
        ax.plot(grid, np.mean(precisions, axis=0), color="black", linewidth=2, linestyle=":",
                label=f"macro-average (AP {macro:.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01),
           title="Precision-recall curve" + (" (one-vs-rest)" if score.ndim == 2 else _positive(names)))
    _legend_outside(ax)
    return fig


def calibration_curve(y_true, score, bins: int = 10, labels: Sequence | None = None) -> Figure:
    """Observed positive rate against mean predicted probability, per score bin.

    Top panel: the reliability curve and the perfectly calibrated diagonal; bottom
    panel: how many rows fall in each bin (a well-calibrated curve over empty bins
    says little). Per-class probabilities ``(n, k)`` give one one-vs-rest curve per class
    (each class's probability against "is this class") plus the micro average (all
    class/row pairs pooled); the legend gives each Brier score and the macro average.

    Raises:
        ValueError: as ``pr_curve``, and for scores outside [0, 1].
    """
    from sklearn.calibration import calibration_curve as sk_calibration_curve
    from sklearn.metrics import brier_score_loss

    y_true, score, names = class_scores(y_true, score, labels, "calibration_curve")
    if score.size and (score.min() < 0 or score.max() > 1):
        raise ValueError(f"calibration_curve needs probabilities in [0, 1]; score ranges from "
                         f"{score.min():.3g} to {score.max():.3g}")
    multiclass = score.ndim == 2
    fig = Figure(figsize=(7.5 if multiclass else 6.5, 5.5), layout="constrained")
    curve, counts = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    curve.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    if not multiclass:
        observed, predicted = sk_calibration_curve(y_true, score, n_bins=bins, strategy="uniform")
        curve.plot(predicted, observed, marker="o", label=f"model (Brier {brier_score_loss(y_true, score):.3f})")
    else:
        onehot, present = one_vs_rest(y_true, len(names))
        briers = []
        for k in present:
            observed, predicted = sk_calibration_curve(onehot[:, k], score[:, k], n_bins=bins, strategy="uniform")
            briers.append(brier_score_loss(onehot[:, k], score[:, k]))
            curve.plot(predicted, observed, marker="o", markersize=2, linewidth=1, alpha=0.6,
                       label=f"{names[k]} (Brier {briers[-1]:.3f})")
        observed, predicted = sk_calibration_curve(onehot.ravel(), score.ravel(), n_bins=bins, strategy="uniform")
        curve.plot(predicted, observed, marker="o", color="black", linewidth=2,
                   label=f"micro-average (Brier {brier_score_loss(onehot.ravel(), score.ravel()):.3f})")
        curve.plot([], [], linestyle="none", label=f"macro-average Brier {np.mean(briers):.3f}")
    curve.set(ylabel="observed positive rate", xlim=(0, 1), ylim=(0, 1.01),
              title="Calibration curve" + (" (one-vs-rest)" if multiclass else _positive(names)))
    _legend_outside(curve)
    counts.hist(score.ravel(), bins=bins, range=(0, 1), color="grey")
    counts.set(xlabel="predicted probability", ylabel="rows" if not multiclass else "row x class", yscale="log")
    return fig


def score_distribution(y_true, score, bins: int = 30, labels: Sequence | None = None) -> Figure:
    """Histogram of the score for each true class (density, so rare classes stay visible)."""
    y_true, score, names = class_scores(y_true, score, labels, "score_distribution", both_classes=False)
    if score.ndim == 2:
        raise ValueError("score_distribution takes one score per row; for per-class probabilities "
                         "pass the predicted class's probability")
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    edges = np.histogram_bin_edges(score, bins=bins)
    for value in np.unique(y_true):
        members = score[y_true == value]
        ax.hist(members, bins=edges, density=True, alpha=0.5, label=f"{names[int(value)]} (n={len(members)})")
    ax.set(xlabel="score" + _positive(names, ": P({})"), ylabel="density", title="Score distribution by class")
    _legend_outside(ax, title="true class")
    return fig


def predicted_vs_actual(y_true, y_pred) -> Figure:
    """Predicted against actual value per row, with the identity line; R² and MAE in the legend.

    Raises:
        ValueError: lengths differ, NaN values, or not one value per row.
    """
    from sklearn.metrics import mean_absolute_error, r2_score

    y_true, y_pred = regression_values(y_true, y_pred, "predicted_vs_actual")
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.scatter(y_true, y_pred, s=8, alpha=min(1.0, max(0.1, 200 / max(len(y_true), 1))), rasterized=True,
               label=f"rows (R² {r2_score(y_true, y_pred):.3f}, MAE {mean_absolute_error(y_true, y_pred):.3g})")
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    ax.plot([low, high], [low, high], linestyle="--", color="grey", label="perfect prediction")
    ax.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual")
    ax.set_aspect("equal", adjustable="datalim")
    _legend_outside(ax)
    return fig


def residuals(y_true, y_pred, bins: int = 30) -> Figure:
    """Residual (actual - predicted) against the prediction, and the residuals' histogram.

    A pattern in the left panel (a funnel, a curve) is error the model could still explain.

    Raises:
        ValueError: as ``predicted_vs_actual``.
    """
    y_true, y_pred = regression_values(y_true, y_pred, "residuals")
    error = y_true - y_pred
    fig = Figure(figsize=(9, 4), layout="constrained")
    scatter, histogram = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    scatter.scatter(y_pred, error, s=8, alpha=min(1.0, max(0.1, 200 / max(len(error), 1))), rasterized=True)
    scatter.axhline(0, linestyle="--", color="grey")
    scatter.set(xlabel="predicted", ylabel="actual - predicted", title="Residuals vs predicted")
    histogram.hist(error, bins=bins, color="grey", orientation="horizontal")
    histogram.axhline(0, linestyle="--", color="grey")
    histogram.set(xlabel="rows", title=f"mean {error.mean():.2g}, sd {error.std():.2g}")
    histogram.sharey(scatter)
    fig.suptitle("Residuals")
    return fig


def diagnostics(predictions: pd.DataFrame, task: str, labels: Sequence[str] | None = None) -> dict[str, Figure]:
    """The figures that judge a model on ``task``, titled, in reading order.

    Args:
        predictions: ``LoadedRun.predictions(split)``: ``target``, ``label``, ``prediction``,
            ``score``, and for multiclass one ``prob_<label>`` column per class in class order.
        task: ``binary``, ``multiclass`` or ``regression``.
        labels: class names in index order; ``None``: the ``prob_`` columns (multiclass) or
            the (target, label) pairs (binary).

    Returns:
        ``{title: figure}``. Binary: confusion matrix, ROC, precision-recall, calibration,
        score distribution. Multiclass: confusion matrix, one-vs-rest ROC, precision-recall
        and calibration. Regression: predicted vs actual, residuals.

    Raises:
        ValueError: an unknown task, a missing column, or a figure's input check (one line).

    Example:
        >>> for title, figure in plots.diagnostics(run.predictions("test"), "multiclass").items():
        ...     display(figure)
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    needed = ["target", "prediction"] + (["score"] if task == "binary" else [])
    missing = [c for c in needed if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lack column(s) {', '.join(missing)} (need {', '.join(needed)})")
    y_true, y_pred = predictions["target"], predictions["prediction"]
    if task == "regression":
        return {"Predicted vs actual": predicted_vs_actual(y_true, y_pred), "Residuals": residuals(y_true, y_pred)}
    if task == "binary":
        names = list(labels) if labels is not None else binary_names(predictions)
        score = predictions["score"]
        return {"Confusion matrix": confusion_matrix(y_true, y_pred, labels=names),
                "ROC curve": roc_curve(y_true, score, labels=names),
                "Precision-recall curve": pr_curve(y_true, score, labels=names),
                "Calibration curve": calibration_curve(y_true, score, labels=names),
                "Score distribution": score_distribution(y_true, score, labels=names)}
    names = list(labels) if labels is not None else [c[len("prob_"):] for c in predictions.columns
                                                      if c.startswith("prob_")]
    columns = [f"prob_{name}" for name in names]
    absent = [c for c in columns if c not in predictions.columns]
    if not names or absent:
        raise ValueError(f"multiclass predictions need one prob_<label> column per class; "
                         f"missing {', '.join(absent) or 'prob_*'}")
    probabilities = predictions[columns].to_numpy(dtype=float)
    return {"Confusion matrix": confusion_matrix(y_true, y_pred, labels=names),
            "ROC curve (one-vs-rest)": roc_curve(y_true, probabilities, labels=names),
            "Precision-recall curve (one-vs-rest)": pr_curve(y_true, probabilities, labels=names),
            "Calibration curve (one-vs-rest)": calibration_curve(y_true, probabilities, labels=names)}


def segment_metrics(frame: pd.DataFrame, segment_column: str, target: str = "target", score: str = "score",
                    metric: str | Callable = "pr_auc", threshold: float = 0.5) -> pd.DataFrame:
    """``metric`` per value of ``segment_column``: a frame of segment, rows, positives, value.

    Args:
        frame: one row per example, e.g. ``LoadedRun.predictions()``.
        segment_column: a categorical column to group by (``"channel"``).
        target: the column of true class indices.
        score: the column of scores (P(class 1)).
        metric: ``pr_auc``, ``auroc``, ``brier`` (on scores), ``accuracy``, ``f1`` (on the
            ``prediction`` column if present, else ``score >= threshold``), or a callable
            ``f(y_true, y_score)``.
        threshold: score cut-off for hard predictions when there is no ``prediction`` column.

    Returns:
        One row per segment, ``value`` NaN where the metric is undefined (one class only).
    """
    function, hard = _metric_function(metric)
    rows = []
    for segment, group in frame.groupby(segment_column, observed=True, sort=True, dropna=False):
        y_true = group[target].to_numpy()
        if hard:
            predicted = group["prediction"] if "prediction" in group else group[score] >= threshold
            y_score = predicted.to_numpy().astype(y_true.dtype)
        else:
            y_score = group[score].to_numpy()
        if metric in ("pr_auc", "auroc") and len(np.unique(y_true)) < 2:
            value = float("nan")  # undefined with one class (sklearn warns, returns 0 or raises)
        else:
            try:
                value = float(function(y_true, y_score))
            except ValueError:  # e.g. a callable metric undefined on this segment
                value = float("nan")
        rows.append({"segment": segment, "rows": len(group), "positives": int(np.sum(y_true == 1)),
                     "value": value})
    return pd.DataFrame(rows, columns=["segment", "rows", "positives", "value"])


def metrics_by_segment(frame: pd.DataFrame, segment_column: str, target: str = "target", score: str = "score",
                       metric: str | Callable = "pr_auc", threshold: float = 0.5) -> Figure:
    """Bar per segment of ``metric`` (see ``segment_metrics``), with the overall value as a line.

    Each bar is annotated with its row count; segments where the metric is undefined are
    marked ``n/a``.
    """
    table = segment_metrics(frame, segment_column, target, score, metric, threshold)
    overall = segment_metrics(frame.assign(_all="all"), "_all", target, score, metric, threshold)["value"].iloc[0]
    name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    fig = Figure(figsize=(max(4.5, 0.8 * len(table) + 2), 4), layout="constrained")
    ax = fig.subplots()
    positions = np.arange(len(table))
    bars = ax.bar(positions, table["value"].fillna(0), color="tab:blue")
    for bar, (_, row) in zip(bars, table.iterrows()):
        text = f"n={row['rows']}" if np.isfinite(row["value"]) else f"n/a\nn={row['rows']}"
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                    fontsize=8)
    ax.axhline(overall, linestyle="--", color="grey", label=f"overall ({overall:.3f})")
    ax.set_xticks(positions, [str(s) for s in table["segment"]])
    ax.set(xlabel=segment_column, ylabel=name, title=f"{name} by {segment_column}")
    _legend_outside(ax)
    return fig


def _metric_name(column: str) -> str:
    """``train/loss_epoch`` -> ``loss``; ``val/pr_auc`` -> ``pr_auc``."""
    return column.split("/", 1)[-1].removesuffix("_epoch").removesuffix("_step")


def _metric_function(metric: str | Callable) -> tuple[Callable, bool]:
    if callable(metric):
        return metric, False
    if metric not in _METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(_METRICS)} or a callable")
    import sklearn.metrics

    name, hard = _METRICS[metric]
    return getattr(sklearn.metrics, name), hard


def _curve_axes(multiclass: bool) -> tuple[Figure, object]:
    """A square-ish plot with room on the right for the legend (wider for a legend per class)."""
    fig = Figure(figsize=(7.5 if multiclass else 6.5, 4.5), layout="constrained")
    return fig, fig.subplots()


def _legend_outside(ax, **kwargs) -> None:
    """The legend right of the axes: never over a curve (constrained layout makes room)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, frameon=False, **kwargs)


def _positive(names: Sequence[str], form: str = " (positive class: {})") -> str:
    """Names the positive class of a binary curve when its name is known."""
    return form.format(names[1]) if len(names) == 2 and names[1] != "1" else ""
