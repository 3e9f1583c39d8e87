"""The baselines a run's ``metrics.json`` reports, read one way for runs old and new.

A run's ``"baseline"`` section holds one dict per baseline, keyed by its name, with metric
names as the model's without the split prefix::

    {"val": {"val/auroc": ...}, "test": {"test/auroc": ...},
     "baseline": {"logistic_regression": {"auroc": ...}, "hist_gradient_boosting": {"auroc": ...}}}

Runs from before ``baseline:`` took a list wrote the one logistic-regression baseline flat
(``{"baseline": {"auroc": ...}}``); ``baseline_metrics`` reads that as
``{"logistic_regression": {...}}``, so no reader needs to know the difference.
"""
from __future__ import annotations

from typing import Any, Mapping

from factory.rundir.cv import SECTION as CV_SECTION

#: The section of ``metrics.json`` that holds the baselines.
SECTION = "baseline"
#: The only baseline runs had while the section was flat.
LEGACY_BASELINE = "logistic_regression"
#: What a table header or a sentence calls each baseline.
LABELS = {"logistic_regression": "logistic regression", "hist_gradient_boosting": "gradient boosting"}


def baseline_metrics(metrics: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{baseline name: {metric: value}}`` of a run's metrics (either shape); ``{}`` without baselines.

    Example:
        >>> baseline_metrics({"baseline": {"auroc": 0.9}})
        {'logistic_regression': {'auroc': 0.9}}
    """
    section = metrics.get(SECTION) or {}
    if not isinstance(section, Mapping):
        return {}
    if any(not isinstance(value, Mapping) for value in section.values()):  # the old flat shape
        return {LEGACY_BASELINE: dict(section)}
    return {name: dict(values) for name, values in section.items()}


def label(name: str) -> str:
    """A baseline's readable name: ``hist_gradient_boosting`` -> ``gradient boosting``."""
    return LABELS.get(name, name.replace("_", " "))


def metric_sections(metrics: Mapping[str, Any], readable: bool = False) -> dict[str, dict[str, float]]:
    """The groups of metrics a table shows side by side: ``val``, ``test``, then one per baseline
    by its name (``readable``: by its ``label``, for a header).

    Other entries of ``metrics.json`` (an evaluation's checkpoint path, a cross-validated run's
    ``cv`` spread and folds: ``factory.rundir.cv``) are left out.
    """
    sections = {group: dict(values) for group, values in metrics.items()
                if group not in (SECTION, CV_SECTION) and isinstance(values, Mapping)}
    baselines = {label(name) if readable else name: values for name, values in baseline_metrics(metrics).items()}
    return {**sections, **baselines}
