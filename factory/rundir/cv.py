"""The cross-validation section of ``metrics.json`` (``data.cv_folds=k``), written and read here.

A cross-validated run trains one model per fold. Its top-level ``val``, ``test`` and
``baseline`` sections hold the MEAN over the folds, so every reader of a run (console table,
``factory.compare``, ``factory.runs()``, the report's headline) shows the cross-validated
estimate as it shows a one-split run's metrics; the spread is in the ``cv`` section::

    {"val": {"val/auroc": <mean>}, "test": {...}, "baseline": {"logistic_regression": {...}},
     "cv": {"folds": 3, "kept_fold": 1,
            "std": {"val": {"val/auroc": <sd>}, "test": {...}, "baseline": {...}},
            "per_fold": [{"val": {...}, "test": {...}, "baseline": {...}}, ...]}}

``std`` is the sample standard deviation (``ddof=1``) over the folds; ``kept_fold`` is the
fold whose model the run keeps as ``checkpoints/best.ckpt``.
"""
from __future__ import annotations

import statistics
from typing import Any, Mapping

#: The section of ``metrics.json`` that holds a cross-validated run's spread and folds.
SECTION = "cv"


def aggregate(per_fold: list[dict[str, Any]], kept_fold: int) -> dict[str, Any]:
    """``metrics.json`` of a cross-validated run from each fold's metrics (same sections and names).

    Example:
        >>> aggregate([{"test": {"test/auroc": 0.8}}, {"test": {"test/auroc": 0.9}}], kept_fold=1)["test"]
        {'test/auroc': 0.85}
    """
    mean = _combine(per_fold, statistics.fmean)
    std = _combine(per_fold, statistics.stdev)
    return {**mean, SECTION: {"folds": len(per_fold), "kept_fold": kept_fold, "std": std, "per_fold": per_fold}}


def _combine(values: list[Any], how) -> Any:
    """``how`` over the leaves of equally shaped nested dicts (the first one's keys)."""
    if isinstance(values[0], Mapping):
        return {key: _combine([v[key] for v in values if key in v], how) for key in values[0]}
    return how([float(v) for v in values])


def cv_section(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The ``cv`` section of a run's metrics; ``{}`` for a one-split run."""
    section = metrics.get(SECTION)
    return dict(section) if isinstance(section, Mapping) else {}
