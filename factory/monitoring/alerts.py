"""Alerts: which monitoring figures breach their thresholds (``conf/monitor/*.yaml``).

Pure functions of plain dicts: the figures ``monitor.json`` holds in, a list of alerts out.
Each alert names its check, what it is about (a feature, a metric, a group difference),
the figure, its value, the threshold and which way it was breached, so a reader (or a pager)
needs nothing else::

    {"check": "quality", "subject": "auroc", "figure": "drop_vs_validation", "value": 0.09,
     "threshold": 0.05, "op": ">", "message": "quality: auroc dropped 0.0900 below validation (> 0.05)"}

A figure that could not be computed (None: no labels, one class, a group too small) raises
no alert: an alert is evidence, and a missing figure is none.

Example:
    >>> quality_alerts({"auroc": 0.80}, {"auroc": 0.90}, {"max_drop": 0.05})[0]["figure"]
    'drop_vs_validation'
"""
from __future__ import annotations

from typing import Any, Mapping

#: The checks a monitor config can turn on, in the order they are reported.
CHECKS = ("drift", "score", "quality", "fairness")
#: Quality metrics that must stay high (a drop is bad) and those that must stay low.
HIGHER_IS_BETTER = ("auroc", "pr_auc", "accuracy", "f1", "precision", "recall")
LOWER_IS_BETTER = ("ece", "brier", "log_loss")


def alert(check: str, subject: str, figure: str, value: float, threshold: float, op: str,
          message: str | None = None, **extra: Any) -> dict:
    """One alert record (see the module docstring)."""
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    named = subject if subject == figure else f"{subject} {figure}"
    text = message or f"{check}: {named} {shown} {op} {threshold}"
    return {"check": check, "subject": subject, "figure": figure, "value": value, "threshold": threshold,
            "op": op, "message": text, **extra}


def _breached(value, threshold, op: str) -> bool:
    if value is None or threshold is None:
        return False
    return value > threshold if op == ">" else value < threshold


def drift_alerts(drift: Mapping, limits: Mapping) -> list[dict]:
    """An alert per reason a feature drifted, with that check's own figure, value and threshold
    (``reason_alerts``), when more features drifted than ``limits["max_drifted_features"]`` allows
    (default 0: any drifted feature alerts).

    Args:
        drift: ``DriftMonitor.result()``: ``{"features": {name: {..., "drifted", "reasons"}}, "drifted": [...]}``.
        limits: the ``drift`` node of the monitor config: the thresholds the monitor tested with.
    """
    allowed = int(limits.get("max_drifted_features") or 0)
    drifted = [name for name in drift.get("drifted") or [] if name in (drift.get("features") or {})]
    if len(drifted) <= allowed:
        return []
    return [a for name in drifted for a in reason_alerts("drift", name, drift["features"][name], limits)]


def score_alerts(score: Mapping | None, limits: Mapping) -> list[dict]:
    """An alert per reason the score distribution drifted (the drift monitor's verdict on ``score``,
    under the same ``drift`` thresholds as the features)."""
    if not score or not score.get("drifted"):
        return []
    return reason_alerts("score", "score", score, limits)


def reason_alerts(check: str, subject: str, figures: Mapping, limits: Mapping) -> list[dict]:
    """One alert per drift reason (``DriftMonitor.result()``'s ``reasons``), naming the figure that fired:

    - ``missing rate ...``: ``missing_delta`` (its absolute value) over its threshold, ``pvalue`` beside it;
    - ``distribution: ...`` (numeric): the effect that passed its floor, ``psi`` or else
      ``wasserstein_std``, with the KS test beside it (``test``: ``ks_pvalue`` < ``alpha``);
    - ``levels: ...`` (categorical): ``psi`` or else ``jensenshannon``, with ``chi2_pvalue`` < ``alpha``;
    - ``unseen levels: ...``: ``unseen_rate`` over its threshold.

    Thresholds not in ``limits`` are the drift monitor's defaults (``DEFAULT_THRESHOLDS``).
    """
    from factory.monitoring.drift import DEFAULT_THRESHOLDS

    th = {**DEFAULT_THRESHOLDS, **{k: v for k, v in limits.items() if v is not None}}
    reasons = list(figures.get("reasons") or [])
    out = []
    for reason in reasons:
        figure, value, op, test = _fired(reason, figures, th)
        extra = {"test": test} if test else {}
        out.append(alert(check, subject, figure, value, th.get(figure), op, f"{check}: {subject}: {reason}",
                         reason=reason, reasons=reasons, **extra))
    return out


def _fired(reason: str, figures: Mapping, th: Mapping) -> tuple[str, Any, str, dict | None]:
    """``(figure, value, op, test)`` of the check behind one drift reason (``reason_alerts``)."""
    def test(name):
        value = figures.get(name)
        return {"figure": name, "value": value, "threshold": th["alpha"], "op": "<"} if value is not None else None

    if reason.startswith("missing rate"):
        delta = figures.get("missing_delta")
        return "missing_delta", abs(delta) if delta is not None else None, ">", test("missing_pvalue")
    if reason.startswith("unseen levels"):
        return "unseen_rate", figures.get("unseen_rate"), ">", None
    if reason.startswith(("distribution", "levels")):
        other, pvalue = (("wasserstein_std", "ks_pvalue") if reason.startswith("distribution")
                         else ("jensenshannon", "chi2_pvalue"))
        psi = figures.get("psi")
        figure = "psi" if psi is not None and psi >= th["psi"] or figures.get(other) is None else other
        return figure, figures.get(figure), ">=", test(pvalue)
    return "drifted", True, "=", None  # a reason this module does not know: still an alert, its text says why


def quality_alerts(quality: Mapping | None, validation: Mapping | None, limits: Mapping) -> list[dict]:
    """Quality floors and ceilings, and drops against the model's validation figures.

    Args:
        quality: figures over the labelled rows of the window (``auroc``, ``pr_auc``, ``ece``, ...).
        validation: the model's own validation figures by the same names (``meta.json``'s ``val/*``).
        limits: ``min_<metric>`` floors, ``max_<metric>`` ceilings, ``max_drop`` (for the
            higher-is-better metrics, validation minus now) and ``max_rise`` (lower-is-better).
    """
    if not quality:
        return []
    out = []
    for name, value in quality.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        floor, ceiling = limits.get(f"min_{name}"), limits.get(f"max_{name}")
        if _breached(value, floor, "<"):
            out.append(alert("quality", name, name, value, floor, "<"))
        if _breached(value, ceiling, ">"):
            out.append(alert("quality", name, name, value, ceiling, ">"))
        before = (validation or {}).get(name)
        if not isinstance(before, (int, float)):
            continue
        if name in HIGHER_IS_BETTER and _breached(before - value, limits.get("max_drop"), ">"):
            out.append(alert("quality", name, "drop_vs_validation", before - value, limits["max_drop"], ">",
                             f"quality: {name} {value:.4f} is {before - value:.4f} below validation "
                             f"{before:.4f} (> {limits['max_drop']})", validation=before))
        if name in LOWER_IS_BETTER and _breached(value - before, limits.get("max_rise"), ">"):
            out.append(alert("quality", name, "rise_vs_validation", value - before, limits["max_rise"], ">",
                             f"quality: {name} {value:.4f} is {value - before:.4f} above validation "
                             f"{before:.4f} (> {limits['max_rise']})", validation=before))
    return out


def fairness_alerts(fairness: Mapping | None, limits: Mapping) -> list[dict]:
    """Demographic-parity and equalized-odds differences (over judged groups) above their maximum."""
    if not fairness:
        return []
    out = []
    for figure in ("demographic_parity_difference", "equalized_odds_difference"):
        value, limit = fairness.get(figure), limits.get(f"max_{figure}")
        if _breached(value, limit, ">"):
            subject = fairness.get("sensitive") or "groups"
            out.append(alert("fairness", subject, figure, value, limit, ">"))
    return out


def evaluate(figures: Mapping, thresholds: Mapping, checks=CHECKS) -> list[dict]:
    """Every alert the figures raise under ``thresholds``, for the ``checks`` that ran.

    Args:
        figures: ``{"drift": DriftMonitor.result(), "quality": {"overall": {...}, "validation": {...}},
            "fairness": fairness_figures(...)}``; absent or None sections raise nothing.
        thresholds: the monitor config: a node per check (``drift``, ``score``, ``quality``, ``fairness``).
        checks: the checks to evaluate.
    """
    out: list[dict] = []
    drift = figures.get("drift") or {}
    if "drift" in checks and drift:
        out += drift_alerts(drift, thresholds.get("drift") or {})
    if "score" in checks and drift:  # the score is tested as a feature is, under the drift thresholds
        out += score_alerts(drift.get("score"), thresholds.get("drift") or {})
    quality = figures.get("quality") or {}
    if "quality" in checks and quality:
        out += quality_alerts(quality.get("overall"), quality.get("validation"), thresholds.get("quality") or {})
    if "fairness" in checks:
        out += fairness_alerts(figures.get("fairness"), thresholds.get("fairness") or {})
    return out
