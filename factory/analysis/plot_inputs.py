"""Input checks of ``factory.analysis.plots``: a wrong input is one ``ValueError`` line naming it.

Each returns the input as arrays the figure draws (class indices as ints, scores as floats),
so a figure never reaches scikit-learn with a shape or value it would reject in a traceback
(``multiclass format is not supported``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def step_level(columns: Sequence[str]) -> set[str]:
    """Columns logged per step beside their per-epoch form (``train/loss`` next to ``train/loss_epoch``,
    any ``*_step``): a curve against the epoch takes the epoch's value, not its last step's."""
    return {c for c in columns if c.endswith("_step") or f"{c}_epoch" in columns}


def binary_names(predictions: pd.DataFrame) -> list[str]:
    """Class names of a binary run from its (target, label) pairs; an unseen class keeps its index."""
    names = ["0", "1"]
    if "label" in predictions.columns:
        for target, label in predictions[["target", "label"]].drop_duplicates().itertuples(index=False):
            if target in (0, 1):
                names[int(target)] = str(label)
    return names


def one_vs_rest(y_true: np.ndarray, n_classes: int) -> tuple[np.ndarray, list[int]]:
    """``(n, k)`` indicator of each row's class, and the classes present (a curve needs positives)."""
    from sklearn.preprocessing import label_binarize

    onehot = label_binarize(y_true, classes=list(range(n_classes)))
    if n_classes == 2:  # label_binarize gives one column for two classes
        onehot = np.hstack([1 - onehot, onehot])
    present = [k for k in range(n_classes) if 0 < onehot[:, k].sum() < len(y_true)]
    if not present:
        raise ValueError("y_true has one class only; one-vs-rest curves need rows of at least two classes")
    return onehot, present


def class_scores(y_true, score, labels: Sequence | None, function: str, both_classes: bool = True):
    """``(y_true, score, names)`` checked for a classifier figure: ValueError (one line) if unfit.

    ``score`` comes back 1-D (binary) or ``(n, k)`` (per-class probabilities); ``names`` has
    one display name per class.
    """
    if labels is None and isinstance(score, pd.DataFrame):
        labels = [str(c).removeprefix("prob_") for c in score.columns]
    y_true = class_indices(y_true, "y_true")
    score = np.asarray(score, dtype=float)
    if score.ndim == 2 and score.shape[1] == 1:
        score = score[:, 0]
    if score.ndim not in (1, 2):
        raise ValueError(f"{function}: score must be one value per row or an (n, k) array; got shape {score.shape}")
    same_length(y_true, "y_true", score, "score")
    no_nan(score, "score")
    seen = np.unique(y_true)
    if score.ndim == 1:
        if len(seen) > 2 or (len(seen) and (seen.min() < 0 or seen.max() > 1)):
            shown = ", ".join(str(v) for v in seen[:10])
            raise ValueError(f"{function}: score has one column but y_true has classes {shown}; for more than two "
                             f"classes pass per-class probabilities (an (n, k) array or DataFrame) and labels=")
        if both_classes and len(seen) < 2:
            raise ValueError(f"{function}: y_true has one class only ({', '.join(map(str, seen)) or 'no rows'}); "
                             f"the curve needs rows of both classes")
        names = [str(v) for v in labels] if labels is not None else ["0", "1"]
        if len(names) != 2:
            raise ValueError(f"{function}: a one-column score is binary but labels names {len(names)} classes")
        return y_true, score, names
    k = score.shape[1]
    names = [str(v) for v in labels] if labels is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{function}: score has {k} columns but labels names {len(names)} classes")
    if len(seen) and seen.max() >= k:
        raise ValueError(f"{function}: y_true has class index {int(seen.max())} but score has only {k} columns")
    return y_true, score, names


def regression_values(y_true, y_pred, function: str) -> tuple[np.ndarray, np.ndarray]:
    """Regression inputs as float arrays, one value per row, same length, no NaN."""
    arrays = []
    for values, name in ((y_true, "y_true"), (y_pred, "y_pred")):
        values = np.asarray(values, dtype=float)
        if values.ndim != 1:
            raise ValueError(f"{function}: {name} must be one value per row; got shape {values.shape}")
        no_nan(values, name)
        arrays.append(values)
    same_length(arrays[0], "y_true", arrays[1], "y_pred")
    if not len(arrays[0]):
        raise ValueError(f"{function}: no rows to plot")
    return arrays[0], arrays[1]


def class_indices(values, name: str) -> np.ndarray:
    """Class indices as an int array; NaN or non-integer values are one ValueError line."""
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one class index per row; got shape {values.shape}")
    if values.dtype.kind not in "iub":
        try:
            numbers = values.astype(float)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must hold class indices 0..k-1; got values such as {values[0]!r}") from None
        no_nan(numbers, name)
        if not np.all(numbers == np.round(numbers)):
            raise ValueError(f"{name} must hold class indices 0..k-1; got non-integer values")
        values = numbers
    values = values.astype(int)
    if len(values) and values.min() < 0:
        raise ValueError(f"{name} must hold class indices 0..k-1; got {int(values.min())}")
    return values


def same_length(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{a_name} has {len(a)} rows but {b_name} has {len(b)}")


def no_nan(values: np.ndarray, name: str) -> None:
    missing = np.isnan(values)
    if missing.any():
        rows = np.flatnonzero(missing.reshape(len(values), -1).any(axis=1))
        raise ValueError(f"{name} has {missing.sum()} NaN value(s) (rows {', '.join(map(str, rows[:5]))}"
                         f"{', ...' if len(rows) > 5 else ''}); drop or fill them first")
