"""Figures for notebooks and reports: learning curves and the usual classifier diagnostics.

Every function returns a ``matplotlib.figure.Figure`` built with the object API
(``Figure()``, no pyplot state), so it works under any backend, in a kernel or a
papermill run, and never leaks open figures. The math comes from scikit-learn
(``sklearn.metrics``, ``sklearn.calibration``); nothing here computes a curve by hand.

Example:
    >>> run = factory.load_run("2026-11-24_03-36-13_203edf")
    >>> preds = run.predictions("test")
    >>> plots.pr_curve(preds["target"], preds["score"])
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

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

    Args:
        history: the per-epoch frame of ``LoadedRun.history`` (an ``epoch`` column and
            ``<stage>/<metric>`` columns), or a ``LoadedRun``.
        metrics: metric names (``["loss", "pr_auc"]``) or full columns (``"val/auroc"``);
            ``None``: every metric in the history.

    Returns:
        The figure; each panel is titled with the metric, each line labelled with its column.
    """
    history = getattr(history, "history", history)
    columns = [c for c in history.columns if "/" in c]
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
    from matplotlib.ticker import MaxNLocator

    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(4.5 * ncols, 3.5 * nrows), layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
    axes = grid[:len(panels)]
    for spare in grid[len(panels):]:
        fig.delaxes(spare)
    x = history["epoch"] if "epoch" in history.columns else pd.Series(range(len(history)))
    for ax, (name, names) in zip(axes, panels.items()):
        for column in names:
            values = history[column]
            keep = values.notna()
            ax.plot(x[keep], values[keep], marker="o", markersize=3, label=column)
        ax.set(title=name, xlabel="epoch", ylabel=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    fig.suptitle("Learning curves")
    return fig


def confusion_matrix(y_true, y_pred, labels: Sequence | None = None, normalize: str | None = None) -> Figure:
    """Counts (or rates, with ``normalize="true"|"pred"|"all"``) of true against predicted class.

    Args:
        y_true: class indices.
        y_pred: predicted class indices.
        labels: display names of the classes, in index order (``datamodule.class_labels``).
    """
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    n = len(labels) if labels is not None else int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1
    matrix = sk_confusion_matrix(y_true, y_pred, labels=list(range(n)), normalize=normalize)
    names = [str(label) for label in labels] if labels is not None else [str(i) for i in range(n)]
    size = max(4.0, 0.5 * n + 2)
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        text = f"{value:.2f}" if normalize else f"{int(value)}"
        ax.text(j, i, text, ha="center", va="center", color="white" if value > threshold else "black")
    ax.set(xticks=range(n), yticks=range(n), xticklabels=names, yticklabels=names,
           xlabel="predicted", ylabel="true", title="Confusion matrix")
    return fig


def roc_curve(y_true, score) -> Figure:
    """ROC curve of a binary score with its AUC, against the chance diagonal."""
    from sklearn.metrics import roc_auc_score, roc_curve as sk_roc_curve

    y_true, score = np.asarray(y_true), np.asarray(score)
    fpr, tpr, _ = sk_roc_curve(y_true, score)
    fig = Figure(figsize=(4.5, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(fpr, tpr, label=f"model (AUC {roc_auc_score(y_true, score):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve",
           xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    return fig


def pr_curve(y_true, score) -> Figure:
    """Precision-recall curve with its average precision, and the prevalence a random score gets."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y_true, score = np.asarray(y_true), np.asarray(score)
    precision, recall, _ = precision_recall_curve(y_true, score)
    prevalence = float(np.mean(y_true == 1))
    fig = Figure(figsize=(4.5, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.step(recall, precision, where="post",
            label=f"model (AP {average_precision_score(y_true, score):.3f})")
    ax.axhline(prevalence, linestyle="--", color="grey", label=f"prevalence ({prevalence:.3f})")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="upper right")
    return fig


def calibration_curve(y_true, score, bins: int = 10) -> Figure:
    """Observed positive rate against mean predicted probability, per score bin.

    Top panel: the reliability curve and the perfectly calibrated diagonal; bottom
    panel: how many rows fall in each bin (a well-calibrated curve over empty bins
    says little).
    """
    from sklearn.calibration import calibration_curve as sk_calibration_curve
    from sklearn.metrics import brier_score_loss

    y_true, score = np.asarray(y_true), np.asarray(score)
    observed, predicted = sk_calibration_curve(y_true, score, n_bins=bins, strategy="uniform")
    fig = Figure(figsize=(4.5, 5.5), layout="constrained")
    curve, counts = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    curve.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    curve.plot(predicted, observed, marker="o",
               label=f"model (Brier {brier_score_loss(y_true, score):.3f})")
    curve.set(ylabel="observed positive rate", title="Calibration curve", xlim=(0, 1), ylim=(0, 1.01))
    curve.legend(loc="upper left")
    counts.hist(score, bins=bins, range=(0, 1), color="grey")
    counts.set(xlabel="predicted probability", ylabel="rows", yscale="log")
    return fig


def score_distribution(y_true, score, bins: int = 30, labels: Sequence | None = None) -> Figure:
    """Histogram of the score for each true class (density, so rare classes stay visible)."""
    y_true, score = np.asarray(y_true), np.asarray(score)
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    edges = np.histogram_bin_edges(score, bins=bins)
    for value in np.unique(y_true):
        name = labels[int(value)] if labels is not None else value
        members = score[y_true == value]
        ax.hist(members, bins=edges, density=True, alpha=0.5, label=f"{name} (n={len(members)})")
    ax.set(xlabel="score", ylabel="density", title="Score distribution by class")
    ax.legend(title="true class")
    return fig


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
    ax.legend()
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
