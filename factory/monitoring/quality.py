"""Model quality once true labels arrive: figures on labelled rows, per time window, against validation.

``load_labels`` and ``join_labels`` (``factory.monitoring.labels``, exported here too) give the
log's labelled rows; ``quality_figures`` scores them with scikit-learn's metrics;
``quality_by_window`` does so per time window, and ``compare_to_validation`` sets them beside
the model's validation figures (``metrics.json``).

Example::

    labels = load_labels("labels.csv")
    table = join_labels(iter_batches(log_dir(serving_dir, "fraud_detection")), labels)
    windows = quality_by_window(table, "1d", task="binary")
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from factory.errors import DataError
from factory.monitoring.fairness import as_arrow, is_positive
from factory.monitoring.labels import JOINED, join_counts, join_labels, like, load_labels  # noqa: F401 - the API

#: Equal-width bins of the reliability diagram and the expected calibration error.
CALIBRATION_BINS = 10
#: Figures by task as ``metrics.json`` names them (``val/<name>``): what the validation comparison reads.
COMPARED = {"binary": ("auroc", "pr_auc", "accuracy", "f1"), "multiclass": ("accuracy", "f1_macro"),
            "regression": ("mse", "mae", "r2")}
_EVERY = re.compile(r"(\d+)\s*(s|m|min|h|d|w)")
_UNITS = {"s": "second", "m": "minute", "min": "minute", "h": "hour", "d": "day", "w": "week"}


def quality_figures(y_true, score, prediction, *, task: str, positive_label=None, threshold: float = 0.5,
                    probabilities: dict | None = None) -> dict:
    """The model's quality on labelled rows, by scikit-learn's metrics.

    binary: ``auroc`` (``roc_auc_score``), ``pr_auc`` (``average_precision_score``), ``brier``
    (``brier_score_loss``), ``accuracy``, ``f1``, the expected calibration error ``ece`` with its
    ``calibration`` bins (10 equal-width bins of the score: mean predicted, observed rate, count;
    ECE = sum of count/rows x |observed - predicted|), and ``confusion`` (tp, fp, tn, fn, precision,
    recall; ``confusion_matrix``). ``accuracy``, ``f1`` and ``confusion`` judge the served decision:
    the logged ``prediction`` (what the caller was told), ``score >= threshold`` only for rows
    without one (``decision`` says which). multiclass: ``accuracy``, ``f1_macro``
    (``f1_score(average="macro")``), ``log_loss`` when ``probabilities`` are given. regression:
    ``mse``, ``mae``, ``r2``. A figure that is undefined here (one class only in the window, no
    predicted positives) is None, with the reason under ``undefined``.

    Args:
        y_true, score, prediction: per row (arrays, lists or pyarrow arrays); rows without a
            true label are left out. ``score``: P(positive) for binary, as the request log holds it.
        task: ``binary``, ``multiclass`` or ``regression``.
        positive_label: the positive class (binary); None: the class the log predicts where
            ``score >= threshold``, else ``1`` / ``"1"`` / ``True`` when the labels are those.
        probabilities: ``{label: per-row probability}`` (multiclass: the log's ``prob_<label>``).

    Raises:
        DataError: unknown task, arrays of different lengths, or no positive label to be found.
    """
    from sklearn import metrics

    if task not in COMPARED:
        raise DataError(f"quality: unknown task {task!r}; use {', '.join(COMPARED)}")
    true, pred, score = _arrow(y_true), _arrow(prediction), _arrow(score)
    if not len(true) == len(pred) == len(score):
        raise DataError(f"quality: y_true, score and prediction differ in length "
                        f"({len(true)}, {len(score)}, {len(pred)})")
    keep = true.is_valid().to_numpy(zero_copy_only=False)
    out: dict = {"task": task, "rows": int(keep.sum()), "undefined": {}}
    undefined = out["undefined"]
    if task == "regression":
        y, p = _floats(true)[keep], _floats(pred)[keep]
        for name, f in (("mse", metrics.mean_squared_error), ("mae", metrics.mean_absolute_error)):
            out[name] = float(f(y, p)) if len(y) else _none(undefined, name, "no labelled rows")
        out["r2"] = (float(metrics.r2_score(y, p)) if len(y) > 1 and np.ptp(y) > 0
                     else _none(undefined, "r2", "fewer than two distinct true values"))
        return out
    if task == "multiclass":
        y, p = _text(true)[keep], _text(pred)[keep]
        out["accuracy"] = (float(metrics.accuracy_score(y, p)) if len(y)
                           else _none(undefined, "accuracy", "no labelled rows"))
        out["f1_macro"] = (float(metrics.f1_score(y, p, average="macro", zero_division=0)) if len(y)
                           else _none(undefined, "f1_macro", "no labelled rows"))
        if probabilities:
            names = [str(k) for k in probabilities]
            matrix = np.column_stack([_floats(_arrow(v))[keep] for v in probabilities.values()])
            unknown = sorted(set(y) - set(names))
            out["log_loss"] = (float(metrics.log_loss(y, matrix, labels=names)) if len(y) and not unknown
                               else _none(undefined, "log_loss", f"labels {unknown} have no probability column"
                                          if unknown else "no labelled rows"))
        return out
    if not keep.any():
        out.update(positive_label=positive_label, threshold=float(threshold), positives=0, calibration=[],
                   confusion=None)
        for name in ("auroc", "pr_auc", "brier", "accuracy", "f1", "ece"):
            out[name] = _none(undefined, name, "no labelled rows")
        return out
    positive = _positive_label(true, pred, score, positive_label, threshold)
    y = is_positive(true, positive, "y_true")[0][keep].astype(np.int8)
    s = _floats(score)[keep]
    hit, decision = _decisions(pred, positive, s, keep, threshold)
    out.update(positive_label=positive, threshold=float(threshold), decision=decision, positives=int(y.sum()))
    one_class = f"one class only in the labels ({int(y.sum())} positives of {len(y)})"
    out["auroc"] = float(metrics.roc_auc_score(y, s)) if 0 < y.sum() < len(y) else _none(undefined, "auroc", one_class)
    out["pr_auc"] = (float(metrics.average_precision_score(y, s)) if y.sum()
                     else _none(undefined, "pr_auc", "no positives in the labels"))
    out["brier"] = float(metrics.brier_score_loss(y, s, pos_label=1))
    out["accuracy"] = float(metrics.accuracy_score(y, hit))
    out["f1"] = (float(metrics.f1_score(y, hit)) if y.sum() or hit.sum()
                 else _none(undefined, "f1", "no positives, labelled or predicted"))
    out["ece"], out["calibration"] = _calibration(y, s)
    tn, fp, fn, tp = (int(v) for v in metrics.confusion_matrix(y, hit, labels=[0, 1]).ravel())
    precision = tp / (tp + fp) if tp + fp else _none(undefined, "precision", "no predicted positives")
    recall = tp / (tp + fn) if tp + fn else _none(undefined, "recall", "no positives in the labels")
    out["confusion"] = {"tp": tp, "fp": fp, "tn": tn, "fn": fn, "precision": precision, "recall": recall}
    return out


def _decisions(pred, positive, s, keep, threshold) -> tuple[np.ndarray, str]:
    """Each labelled row's served decision (1: positive): the logged ``prediction`` where there is
    one, ``score >= threshold`` where it is missing; and which of the two decided."""
    import pyarrow as pa

    if pa.types.is_null(pred.type):  # no prediction logged at all
        predicted = present = np.zeros(len(pred), dtype=bool)
    else:
        predicted, present = is_positive(pred, positive, "prediction")
    predicted, present = predicted[keep], present[keep]
    hit = np.where(present, predicted, s >= threshold).astype(np.int8)
    decision = ("prediction" if present.all() else "threshold" if not present.any()
                else "prediction (threshold where missing)")
    return hit, decision


def _calibration(y, s) -> tuple[float, list[dict]]:
    """Expected calibration error and the reliability bins (equal width on [0, 1]; empty bins kept)."""
    which = np.clip((s * CALIBRATION_BINS).astype(np.int64), 0, CALIBRATION_BINS - 1)
    count = np.bincount(which, minlength=CALIBRATION_BINS)
    predicted = np.bincount(which, weights=s, minlength=CALIBRATION_BINS)
    observed = np.bincount(which, weights=y, minlength=CALIBRATION_BINS)
    bins, ece = [], 0.0
    for i in range(CALIBRATION_BINS):
        n = int(count[i])
        mean, rate = (float(predicted[i] / n), float(observed[i] / n)) if n else (None, None)
        if n:
            ece += n / len(y) * abs(rate - mean)
        bins.append({"low": i / CALIBRATION_BINS, "high": (i + 1) / CALIBRATION_BINS,
                     "mean_predicted": mean, "observed_rate": rate, "count": n})
    return float(ece), bins


def _positive_label(true, pred, score, positive_label, threshold):
    """The positive class: given, else what the log predicts at or above the threshold, else 1/True."""
    import pyarrow.compute as pc

    if positive_label is not None:
        return positive_label
    above = pred.filter(pc.fill_null(pc.greater_equal(score, threshold), False)).drop_null()
    predicted = set(_text(above.unique()).tolist())
    if len(predicted) == 1:
        return predicted.pop()
    seen = set(_text(true.drop_null().unique()).tolist()) | set(_text(pred.drop_null().unique()).tolist())
    for candidates, positive in (({"0", "1"}, 1), ({"False", "True"}, True), ({"false", "true"}, "true")):
        if seen and seen <= candidates:
            return positive
    raise DataError(f"quality: cannot tell the positive class among labels {sorted(seen)[:10]}: "
                    "name it (positive_label=...)")


def _none(undefined: dict, name: str, reason: str):
    undefined[name] = reason
    return None


def _arrow(values):
    return as_arrow(values, "values")


def _floats(arr) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)


def _text(arr) -> np.ndarray:
    import pyarrow as pa

    return np.asarray(like(arr, pa.string()).to_pylist(), dtype=object)


def quality_by_window(table, every: str, *, task: str = "binary", positive_label=None,
                      threshold: float = 0.5) -> list[dict]:
    """``quality_figures`` per time window of ``join_labels``' table, oldest first (empty windows left out).

    Args:
        every: the window length: ``<N><s|m|min|h|d|w>`` (``15m``, ``1h``, ``1d``, ``7d``);
            windows start at multiples of it since 1970-01-01 UTC (``1d``: midnight UTC).
        task, positive_label, threshold: as ``quality_figures``; the positive class is settled
            once over the whole table, so every window counts the same class.

    Returns:
        ``[{"start", "end" (ISO 8601 UTC), "versions": [model versions seen], **figures}]``.

    Raises:
        DataError: ``every`` is not a length; the table has no ``time`` column.
    """
    import pyarrow.compute as pc

    match = _EVERY.fullmatch(str(every).strip())
    if not match or int(match.group(1)) <= 0:
        raise DataError(f"quality: every={every!r} is not a window length; use <N><s|m|min|h|d|w> (1h, 1d)")
    if "time" not in table.column_names:
        raise DataError(f"quality: the labelled table has no 'time' column (it has {table.column_names})")
    if not table.num_rows:
        return []
    table = table.sort_by("time")
    amount, unit = int(match.group(1)), _UNITS[match.group(2)]
    starts = pc.floor_temporal(table["time"], multiple=amount, unit=unit)
    ceil = pc.ceil_temporal(starts, multiple=amount, unit=unit, ceil_is_strictly_greater=True)
    if task == "binary" and positive_label is None:
        positive_label = _positive_label(_arrow(table["label"]), _arrow(table["prediction"]),
                                         _arrow(table["score"]), None, threshold)
    probs = [c for c in table.column_names if c.startswith("prob_")]
    keys = starts.cast("int64").to_numpy()
    bounds = np.flatnonzero(np.diff(keys)) + 1
    windows = []
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(keys)]):
        part = table.slice(lo, hi - lo)
        figures = quality_figures(part["label"], part["score"], part["prediction"], task=task,
                                  positive_label=positive_label, threshold=threshold,
                                  probabilities={c[len("prob_"):]: part[c] for c in probs} or None)
        versions = sorted(pc.unique(part["version"]).to_pylist()) if "version" in part.column_names else []
        windows.append({"start": starts[lo].as_py().isoformat(), "end": ceil[lo].as_py().isoformat(),
                        "versions": versions, **figures})
    return windows


def validation_figures(source) -> dict[str, float]:
    """A model's validation figures, flat (``val/auroc``): from ``metrics.json``'s dict, a run
    directory or its ``metrics.json``, a registry version folder (``meta.json``'s ``metrics``),
    or an already flat dict."""
    from factory.registry.store import METADATA
    from factory.rundir.catalog import flat_metrics
    from factory.rundir.layout import METRICS

    if not isinstance(source, dict):
        path = Path(source)
        for candidate in (path, path / METRICS, path / METADATA):
            if candidate.is_file():
                source = json.loads(candidate.read_text())
                source = source.get("metrics", {}) if candidate.name == METADATA else source
                break
        else:
            raise DataError(f"validation figures: no metrics.json or meta.json at {path}")
    nested = any(isinstance(v, dict) for v in source.values())
    return flat_metrics(source) if nested else dict(source)


def compare_to_validation(figures: dict, validation, *, section: str = "val") -> dict[str, dict]:
    """Each figure the model was validated on: ``{name: {"metric", "validation", "current", "change"}}``.

    ``figures``: ``quality_figures``' dict (or one window of ``quality_by_window``);
    ``validation``: what ``validation_figures`` reads. ``change`` is current - validation, None
    where either is missing. Names follow ``metrics.json``: ``val/pr_auc`` beside ``pr_auc``.
    """
    flat = validation_figures(validation)
    out = {}
    for name in COMPARED.get(figures.get("task"), ()):
        metric = f"{section}/{name}"
        if metric not in flat:
            continue
        before, now = flat[metric], figures.get(name)
        before = None if before is None or before != before else float(before)
        out[name] = {"metric": metric, "validation": before, "current": now,
                     "change": None if before is None or now is None else now - before}
    return out
