"""The promotion gate's decision, on plain figures; the holdout metric on tiny scored frames."""
from __future__ import annotations

import pandas as pd
import pytest

from factory.monitoring.gate import METRICS, decide, gate_metric, holdout_metric

LIMITS = {"demographic_parity_difference": 0.1, "equalized_odds_difference": 0.2}
FAIR = {"demographic_parity_difference": 0.04, "equalized_odds_difference": 0.12}


def test_promotes_a_challenger_that_beats_the_champion_by_the_margin_and_is_fair():
    decision = decide(0.50, 0.53, mode="max", margin=0.02, fairness=FAIR, limits=LIMITS)
    assert decision["promote"] and decision["action"] == "gate_promote"
    assert decision["checks"]["metric"]["improvement"] == pytest.approx(0.03)
    assert decision["checks"]["fairness"]["passed"]
    assert any("beats champion" in r for r in decision["reasons"])


@pytest.mark.parametrize("challenger", [0.51, 0.50, 0.45])
def test_keeps_the_champion_below_the_margin_on_a_tie_and_when_worse(challenger):
    decision = decide(0.50, challenger, mode="max", margin=0.02)
    assert not decision["promote"] and decision["action"] == "gate_keep"
    assert not decision["checks"]["metric"]["passed"]
    assert len(decision["reasons"]) == 1 and decision["reasons"][0].startswith("pr_auc: challenger")


def test_a_tie_never_replaces_the_champion_even_with_no_margin():
    assert not decide(0.5, 0.5, mode="max", margin=0.0)["promote"]
    assert decide(0.5, 0.5001, mode="max", margin=0.0)["promote"]


def test_keeps_the_champion_when_the_challenger_breaks_a_fairness_limit():
    unfair = {"demographic_parity_difference": 0.25, "equalized_odds_difference": 0.1}
    decision = decide(0.50, 0.60, mode="max", margin=0.01, fairness=unfair, limits=LIMITS)
    assert not decision["promote"]
    assert decision["checks"]["metric"]["passed"] and not decision["checks"]["fairness"]["passed"]
    assert decision["reasons"] == ["fairness: demographic_parity_difference 0.25 is over the limit 0.1"]


def test_a_fairness_figure_that_could_not_be_judged_fails_its_limit():
    decision = decide(0.5, 0.6, mode="max", fairness={"demographic_parity_difference": None},
                      limits={"demographic_parity_difference": 0.1})
    assert not decision["promote"] and "could not be judged" in decision["reasons"][0]


def test_limits_without_figures_are_a_caller_error():
    with pytest.raises(ValueError, match="no fairness figures"):
        decide(0.5, 0.6, mode="max", limits=LIMITS)


def test_min_mode_metric_promotes_a_lower_value_by_the_margin():
    assert decide(0.30, 0.25, mode="min", margin=0.04, metric="loss")["promote"]
    decision = decide(0.30, 0.28, mode="min", margin=0.04, metric="loss")
    assert not decision["promote"] and "less than the margin" in decision["reasons"][0]
    assert not decide(0.30, 0.35, mode="min", metric="loss")["promote"]  # higher is worse


@pytest.mark.parametrize("mode, value, floor, promote", [
    ("max", 0.30, 0.2, True), ("max", 0.10, 0.2, False), ("min", 0.10, 0.2, True), ("min", 0.30, 0.2, False),
    ("max", 0.01, None, True),
])
def test_no_champion_promotes_past_the_floor(mode, value, floor, promote):
    decision = decide(None, value, mode=mode, floor=floor)
    assert decision["promote"] is promote
    assert decision["checks"]["metric"]["champion"] is None
    assert "no champion" in decision["reasons"][0]


def test_no_champion_still_answers_to_the_fairness_limits():
    assert not decide(None, 0.9, mode="max", fairness={"demographic_parity_difference": 0.5},
                      limits={"demographic_parity_difference": 0.1})["promote"]


def test_an_uncomputable_challenger_is_kept_out():
    assert not decide(0.5, None, mode="max")["promote"]
    assert not decide(0.5, float("nan"), mode="max")["promote"]


@pytest.mark.parametrize("kwargs", [{"mode": "up"}, {"mode": "max", "margin": -0.1}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        decide(0.5, 0.6, **kwargs)


def test_holdout_metric_binary_matches_scikit_learn():
    frame = pd.DataFrame({"target": [0, 0, 1, 1], "score": [0.1, 0.6, 0.4, 0.9], "prediction": [0, 1, 0, 1]})
    assert holdout_metric(frame, "pr_auc", "binary") == pytest.approx(0.8333333)  # AP: (1 + 2/3) / 2
    assert holdout_metric(frame, "auroc", "binary") == pytest.approx(0.75)
    assert holdout_metric(frame, "accuracy", "binary") == pytest.approx(0.5)
    one_class = frame.assign(target=[0, 0, 0, 0])
    assert holdout_metric(one_class, "pr_auc", "binary") is None


def test_holdout_metric_refuses_a_metric_of_another_task():
    frame = pd.DataFrame({"target": [1.0], "score": [1.0], "prediction": [1.0]})
    assert holdout_metric(frame, "mae", "regression") == 0.0
    with pytest.raises(ValueError, match="not computed for a regression model"):
        holdout_metric(frame, "pr_auc", "regression")


def test_a_limit_set_to_none_is_not_checked():
    decision = decide(0.5, 0.6, mode="max", fairness={"demographic_parity_difference": 0.5},
                      limits={"demographic_parity_difference": None, "equalized_odds_difference": None})
    assert decision["promote"] and decision["checks"]["fairness"]["limits"] == {}


@pytest.mark.parametrize(("metric", "mode"), [("loss", "min"), ("mse", "min"), ("mae", "min"), ("brier", "min"),
                                              ("pr_auc", "max"), ("auroc", "max"), ("accuracy", "max"),
                                              ("f1", "max"), ("r2", "max")])
def test_an_explicit_metric_takes_its_own_direction_not_the_training_mode(metric, mode):
    # The training run monitors val/pr_auc (max): pipeline.metric=loss must still be judged lower-is-better.
    other = "max" if mode == "min" else "min"
    chosen = gate_metric(metric, None, "val/whatever", other)
    assert chosen == {"name": metric, "mode": mode, "mode_from": "metric"}
    assert gate_metric(metric, mode, "val/whatever", other)["mode"] == mode  # an agreeing mode is fine
    with pytest.raises(ValueError, match=f"pipeline.mode: '{other}' contradicts pipeline.metric '{metric}'"):
        gate_metric(metric, other, "val/whatever", other)


def test_with_an_explicit_loss_the_gate_promotes_the_lower_loss():
    mode = gate_metric("loss", None, "val/pr_auc", "max")["mode"]
    assert decide(0.6, 0.3, mode=mode, metric="loss")["promote"]  # 0.3 replaces 0.6
    assert not decide(0.3, 0.6, mode=mode, metric="loss")["promote"]  # 0.6 never replaces 0.3


def test_the_training_mode_goes_with_the_training_metric_only():
    assert gate_metric(None, None, "val/pr_auc", "max") == {"name": "pr_auc", "mode": "max", "mode_from": "monitor.mode"}
    assert gate_metric(None, None, "val/loss", "min")["mode"] == "min"
    with pytest.raises(ValueError, match="contradicts monitor.metric 'loss'"):
        gate_metric(None, "max", "val/loss", "min")
    with pytest.raises(ValueError, match="is not known"):
        gate_metric("custom", None, "val/pr_auc", "max")
    assert gate_metric("custom", "min", "val/pr_auc", "max")["mode"] == "min"


def test_every_holdout_metric_has_a_direction():
    from factory.monitoring.gate import DIRECTIONS

    assert {name for names in METRICS.values() for name in names} <= set(DIRECTIONS)


def test_an_unchecked_holdout_refuses_promotion_only_when_required():
    unchecked = {"champion_rows_checked": False, "note": "the champion's training data could not be rebuilt: gone"}
    assert decide(0.5, 0.6, mode="max", holdout=unchecked)["promote"]  # the default: the gate still decides
    decision = decide(0.5, 0.6, mode="max", holdout=unchecked, require_disjoint_holdout=True)
    assert not decision["promote"] and decision["checks"]["metric"]["passed"]
    assert decision["reasons"] == ["holdout: its overlap with the champion's rows was not checked (the champion's "
                                   "training data could not be rebuilt: gone); pipeline.require_disjoint_holdout is true"]
    checked = {"champion_rows_checked": True, "note": None}
    assert decide(0.5, 0.6, mode="max", holdout=checked, require_disjoint_holdout=True)["promote"]
    # No champion: nothing to overlap with.
    assert decide(None, 0.6, mode="max", holdout={"champion_rows_checked": False, "note": "no champion"},
                  require_disjoint_holdout=True)["promote"]
