"""The promotion gate: does a challenger replace the champion? Pure functions of the figures.

``decide`` judges what the retrain pipeline (``factory.monitoring.pipeline``) measured: the
monitored metric of champion and challenger on one holdout (``holdout_metric``) and the
challenger's fairness figures (``factory.monitoring.fairness.fairness_figures``) against limits.
It reads no file and writes none, so every rule is tested on plain numbers.

Example:
    >>> decide(0.50, 0.53, mode="max", margin=0.01)["promote"]
    True
    >>> decide(0.50, 0.505, mode="max", margin=0.01)["reasons"]
    ['pr_auc: challenger 0.505 beats champion 0.5 by 0.005, less than the margin 0.01']
"""
from __future__ import annotations

import math
from typing import Mapping

MODES = ("max", "min")

#: Metrics ``holdout_metric`` computes from a scored frame (``factory.models.predict.scored_frame``),
#: by task: the names the models log (``factory.models.metrics``), ``loss`` as an unweighted log loss
#: (MSE for regression).
METRICS = {
    "binary": ("pr_auc", "auroc", "accuracy", "f1", "loss"),
    "multiclass": ("accuracy", "f1_macro", "loss"),
    "regression": ("mse", "mae", "r2", "loss"),
}


#: Which way is better for each metric the gate may compare (``METRICS``, and the quality figures'
#: names): an explicit ``pipeline.mode`` must agree with it.
DIRECTIONS = {**dict.fromkeys(("pr_auc", "auroc", "accuracy", "f1", "f1_macro", "precision", "recall", "r2"), "max"),
              **dict.fromkeys(("loss", "log_loss", "mse", "mae", "rmse", "brier", "ece"), "min")}


def gate_metric(metric: str | None, mode: str | None, monitor_metric: str, monitor_mode: str) -> dict:
    """The metric the gate compares and its direction: ``{"name", "mode", "mode_from"}``.

    ``metric`` (``pipeline.metric``) None: the challenger's ``monitor.metric`` without its split
    (``val/pr_auc`` -> ``pr_auc``) with ``monitor.mode`` (the training run optimizes the same
    direction), unless ``mode`` is given. ``metric`` given: its own direction (``DIRECTIONS``:
    ``loss`` min, ``pr_auc`` max), never the training run's mode, which belongs to another metric.

    Raises:
        ValueError: ``mode`` contradicts ``metric``'s direction, or a metric of unknown direction
            with no ``mode``.
    """
    if metric is None:
        name = str(monitor_metric).split("/", 1)[-1]
        if mode is None:
            return {"name": name, "mode": str(monitor_mode), "mode_from": "monitor.mode"}
        metric_from = "monitor.metric"
    else:
        name, metric_from = str(metric), "pipeline.metric"
    direction = DIRECTIONS.get(name)
    if mode is not None and direction is not None and mode != direction:
        raise ValueError(f"pipeline.mode: {mode!r} contradicts {metric_from} {name!r}, where {direction} is better "
                         f"(set pipeline.mode={direction} or leave it null)")
    if mode is not None:
        return {"name": name, "mode": mode, "mode_from": "pipeline.mode"}
    if direction is None:
        raise ValueError(f"pipeline.mode: which way is better for pipeline.metric {name!r} is not known: set it (max | min)")
    return {"name": name, "mode": direction, "mode_from": "metric"}


def decide(champion: float | None, challenger: float | None, *, mode: str, margin: float = 0.0,
           floor: float | None = None, fairness: Mapping | None = None,
           limits: Mapping[str, float] | None = None, metric: str = "pr_auc", holdout: Mapping | None = None,
           require_disjoint_holdout: bool = False) -> dict:
    """Promote the challenger, or keep the champion.

    The challenger is promoted only when every check passes:

    - **metric**: with a champion, it beats it by at least ``margin`` in the metric's direction
      (``mode="max"``: challenger - champion >= margin; ``"min"``: champion - challenger >= margin),
      and by more than nothing (a tie never replaces a champion). Without one (``champion=None``:
      nothing at the stage yet), it reaches ``floor`` (>= for max, <= for min; no floor: passes).
    - **fairness**: each figure named in ``limits`` (``demographic_parity_difference``,
      ``equalized_odds_difference``, ...) is at most its limit. A figure that could not be
      computed (``None``: no group large enough to judge, or no labels) fails: a gate that
      cannot see a disparity does not vouch for its absence.
    - **holdout** (only with ``require_disjoint_holdout`` and a champion): the holdout was checked
      free of the champion's train/val rows (``holdout["champion_rows_checked"]``).

    Args:
        champion: the champion's metric on the holdout; ``None`` when there is no champion.
        challenger: the challenger's; ``None`` (not computable) fails the metric check.
        mode: ``max`` or ``min``: which direction is better.
        margin: the least improvement that promotes (absolute, in the metric's units; >= 0).
        floor: the least (``max``) or most (``min``) value a first version needs; ``None``: none.
        fairness: the challenger's fairness figures (``fairness_figures``' dict); ``None``: none measured.
        limits: ``{figure name: largest allowed value}``; a ``None`` value is not checked; empty or
            ``None``: no fairness check.
        metric: the metric's name, for the reasons.
        holdout: the score step's holdout figures (``champion_rows_checked``, ``note``).
        require_disjoint_holdout: refuse to promote over a champion when the holdout's overlap with
            its rows was not checked.

    Returns:
        ``{"promote": bool, "action": "gate_promote" | "gate_keep", "reasons": [str], "checks":
        {"metric": {...}, "fairness": {...}}}``: each check's figures and whether it passed;
        ``reasons`` says in words why each failing check failed (or why it promoted).

    Raises:
        ValueError: ``mode`` not max/min, a negative margin, or limits without fairness figures.
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    if margin < 0 or not math.isfinite(margin):
        raise ValueError(f"margin {margin!r}: expected a finite number >= 0")
    metric_check = _metric_check(champion, challenger, mode, margin, floor, metric)
    fairness_check = _fairness_check(fairness, limits)
    checks = {"metric": metric_check, "fairness": fairness_check,
              "holdout": _holdout_check(holdout, require_disjoint_holdout, champion is not None)}
    promote = all(check["passed"] for check in checks.values())
    reasons = [reason for check in checks.values() if not check["passed"]
               for reason in check.get("failures", check["reasons"])]
    if promote:
        reasons = [reason for check in checks.values() for reason in check["reasons"]]
    return {"promote": promote, "action": "gate_promote" if promote else "gate_keep", "reasons": reasons,
            "checks": checks}


def _metric_check(champion, challenger, mode, margin, floor, metric) -> dict:
    check = {"metric": metric, "mode": mode, "champion": champion, "challenger": challenger, "margin": margin,
             "floor": floor, "improvement": None}
    if not _finite(challenger):
        return {**check, "passed": False, "reasons": [f"{metric}: the challenger's value could not be computed"]}
    if champion is None:
        if floor is None:
            return {**check, "passed": True, "reasons": [f"{metric}: no champion; no floor set, "
                                                         f"challenger {challenger:.4g} is the first"]}
        passed = challenger >= floor if mode == "max" else challenger <= floor
        word = "reaches" if passed else "misses"
        return {**check, "passed": passed, "reasons": [
            f"{metric}: no champion; challenger {challenger:.4g} {word} the floor {floor:.4g} ({mode})"]}
    if not _finite(champion):
        return {**check, "passed": False, "reasons": [f"{metric}: the champion's value could not be computed"]}
    improvement = challenger - champion if mode == "max" else champion - challenger
    check["improvement"] = improvement
    if improvement <= 0:
        return {**check, "passed": False, "reasons": [
            f"{metric}: challenger {challenger:.4g} does not beat champion {champion:.4g} ({mode} is better)"]}
    if improvement < margin:
        return {**check, "passed": False, "reasons": [
            f"{metric}: challenger {challenger:.4g} beats champion {champion:.4g} by {improvement:.4g}, "
            f"less than the margin {margin:.4g}"]}
    return {**check, "passed": True, "reasons": [
        f"{metric}: challenger {challenger:.4g} beats champion {champion:.4g} by {improvement:.4g} "
        f"(margin {margin:.4g})"]}


def _fairness_check(fairness, limits) -> dict:
    limits = {name: limit for name, limit in (limits or {}).items() if limit is not None}
    if not limits:
        return {"passed": True, "limits": {}, "figures": {}, "reasons": ["fairness: no limits set"]}
    if fairness is None:
        raise ValueError("fairness limits are set but no fairness figures were measured")
    figures, reasons, failures = {}, [], []
    for name, limit in limits.items():
        value = figures[name] = fairness.get(name)
        if not _finite(value):
            failures.append(f"fairness: {name} could not be judged (no group large enough, or no labels); "
                            f"limit {limit:.4g}")
        elif value > limit:
            failures.append(f"fairness: {name} {value:.4g} is over the limit {limit:.4g}")
        else:
            reasons.append(f"fairness: {name} {value:.4g} within the limit {limit:.4g}")
    return {"passed": not failures, "limits": limits, "figures": figures, "reasons": failures + reasons,
            "failures": failures}


def _holdout_check(holdout, required: bool, has_champion: bool) -> dict:
    checked = (holdout or {}).get("champion_rows_checked")
    check = {"required": required, "champion_rows_checked": checked, "passed": True, "reasons": []}
    if not required or not has_champion:
        return check
    if checked:
        return {**check, "reasons": ["holdout: checked free of the champion's train/val rows"]}
    note = (holdout or {}).get("note") or "not checked"
    return {**check, "passed": False, "reasons": [
        f"holdout: its overlap with the champion's rows was not checked ({note}); "
        "pipeline.require_disjoint_holdout is true"]}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def holdout_metric(frame, name: str, task: str) -> float | None:
    """``name`` (``pr_auc``, ``auroc``, ``accuracy``, ``f1``, ``f1_macro``, ``mse``, ``mae``, ``r2``,
    ``loss``) of a scored frame with ``target`` (``factory.models.predict.scored_frame``), through
    scikit-learn, the same way for champion and challenger. ``None`` where it is undefined (one
    class only in the holdout).

    Raises:
        ValueError: a metric not computed for ``task`` (see ``METRICS``), or no ``target`` column.
    """
    from sklearn import metrics as m

    if name not in METRICS.get(task, ()):
        raise ValueError(f"metric {name!r} is not computed for a {task} model on the holdout "
                         f"(choose one of {', '.join(METRICS.get(task, ()))})")
    if "target" not in frame.columns:
        raise ValueError("the scored holdout has no target column")
    y, score, prediction = frame["target"].to_numpy(), frame["score"].to_numpy(), frame["prediction"].to_numpy()
    if task == "regression":
        value = {"mse": m.mean_squared_error, "loss": m.mean_squared_error, "mae": m.mean_absolute_error,
                 "r2": m.r2_score}[name](y, prediction)
        return float(value)
    if len(set(y.tolist())) < 2 and name in ("pr_auc", "auroc"):
        return None
    if task == "binary":
        value = {"pr_auc": lambda: m.average_precision_score(y, score), "auroc": lambda: m.roc_auc_score(y, score),
                 "accuracy": lambda: m.accuracy_score(y, prediction), "f1": lambda: m.f1_score(y, prediction),
                 "loss": lambda: m.log_loss(y, score, labels=[0, 1])}[name]()
        return float(value)
    probabilities = frame[[c for c in frame.columns if c.startswith("prob_")]].to_numpy()
    value = {"accuracy": lambda: m.accuracy_score(y, prediction),
             "f1_macro": lambda: m.f1_score(y, prediction, average="macro"),
             "loss": lambda: m.log_loss(y, probabilities, labels=list(range(probabilities.shape[1])))}[name]()
    return float(value)

