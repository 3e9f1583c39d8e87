"""Alert evaluation: figures in, the breached checks out, on small hand-written dicts."""
from __future__ import annotations

import pytest

from factory.monitoring.alerts import drift_alerts, evaluate, fairness_alerts, quality_alerts, score_alerts

THRESHOLDS = {
    "drift": {"psi": 0.1, "max_drifted_features": 0},
    "quality": {"min_auroc": 0.8, "min_pr_auc": None, "max_drop": 0.05, "max_ece": 0.1, "max_rise": None},
    "fairness": {"max_demographic_parity_difference": 0.1, "max_equalized_odds_difference": 0.2},
}


def _drift(**drifted: bool) -> dict:
    features = {name: {"psi": 0.4 if d else 0.01, "drifted": d, "reasons": ["distribution: PSI 0.400"] if d else []}
                for name, d in drifted.items()}
    return {"features": features, "drifted": [n for n, d in drifted.items() if d],
            "score": {"psi": 0.02, "drifted": False, "reasons": []}, "rows": 1000}


def test_each_drifted_feature_is_one_alert_naming_it_and_its_reasons():
    alerts = drift_alerts(_drift(amount=True, hour=False, channel=True), THRESHOLDS["drift"])
    assert [(a["check"], a["subject"], a["figure"], a["value"], a["threshold"]) for a in alerts] == [
        ("drift", "amount", "psi", 0.4, 0.1), ("drift", "channel", "psi", 0.4, 0.1)]
    assert alerts[0]["reasons"] == ["distribution: PSI 0.400"]
    assert "amount" in alerts[0]["message"] and "PSI 0.400" in alerts[0]["message"]


# Figures as DriftMonitor.result() gives them (factory/monitoring/drift.py), each drifted for one reason.
UNSEEN = {"psi": 0.0496, "jensenshannon": 0.05, "chi2_pvalue": 0.2, "unseen_rate": 0.04, "missing_delta": 0.0,
          "missing_pvalue": 1.0, "drifted": True, "reasons": ["unseen levels: 4.0% of values (crypto_exchange)"]}
WASSERSTEIN = {"psi": 0.06, "ks_pvalue": 1e-9, "wasserstein_std": 0.3, "missing_delta": 0.0, "missing_pvalue": 1.0,
               "drifted": True, "reasons": ["distribution: PSI 0.060, KS p=1e-09, Wasserstein 0.30 std"]}
LEVELS = {"psi": 0.02, "jensenshannon": 0.2, "chi2_pvalue": 1e-6, "unseen_rate": 0.0, "missing_delta": 0.0,
          "missing_pvalue": 1.0, "drifted": True, "reasons": ["levels: PSI 0.020, chi-squared p=1e-06, Jensen-Shannon 0.200"]}
MISSING = {"psi": 0.01, "ks_pvalue": 0.5, "wasserstein_std": 0.01, "missing_delta": -0.05, "missing_pvalue": 1e-5,
           "drifted": True, "reasons": ["missing rate 6.0% -> 1.0% (p=1e-05)"]}
LIMITS = {"alpha": 0.01, "psi": 0.1, "wasserstein_std": 0.1, "jensenshannon": 0.1, "missing_delta": 0.02,
          "unseen_rate": 0.01, "max_drifted_features": 0}


@pytest.mark.parametrize("figures, expected, test", [
    (UNSEEN, ("unseen_rate", 0.04, 0.01, ">"), None),  # not "psi 0.0496 > 0.1"
    (WASSERSTEIN, ("wasserstein_std", 0.3, 0.1, ">="), ("ks_pvalue", 1e-9, 0.01)),
    (LEVELS, ("jensenshannon", 0.2, 0.1, ">="), ("chi2_pvalue", 1e-6, 0.01)),
    (MISSING, ("missing_delta", 0.05, 0.02, ">"), ("missing_pvalue", 1e-5, 0.01)),
])
def test_a_drift_alert_names_the_check_that_fired_with_its_own_figure_and_threshold(figures, expected, test):
    (a,) = drift_alerts({"features": {"f": figures}, "drifted": ["f"]}, LIMITS)
    assert (a["figure"], a["value"], a["threshold"], a["op"]) == expected
    assert a["reason"] == figures["reasons"][0] and a["message"] == f"drift: f: {figures['reasons'][0]}"
    assert (a.get("test") and (a["test"]["figure"], a["test"]["value"], a["test"]["threshold"])) == (test or None)
    assert _breached(a["value"], a["threshold"], a["op"])


def _breached(value, threshold, op):
    return value >= threshold if op == ">=" else value > threshold


def test_a_feature_drifted_for_two_reasons_is_two_alerts_and_missing_thresholds_are_the_monitors_defaults():
    both = {**UNSEEN, "psi": 0.3, "reasons": ["levels: PSI 0.300, chi-squared p=1e-06, Jensen-Shannon 0.050",
                                              "unseen levels: 4.0% of values (crypto_exchange)"]}
    alerts = drift_alerts({"features": {"merchant": both}, "drifted": ["merchant"]}, {"psi": 0.2})
    assert [(a["figure"], a["value"], a["threshold"]) for a in alerts] == [("psi", 0.3, 0.2), ("unseen_rate", 0.04, 0.01)]


def test_no_drift_no_alert_and_drifted_features_up_to_the_allowance_pass():
    assert drift_alerts(_drift(amount=False, hour=False), THRESHOLDS["drift"]) == []
    assert drift_alerts(_drift(amount=True, hour=False), {"psi": 0.1, "max_drifted_features": 1}) == []
    assert len(drift_alerts(_drift(amount=True, hour=True), {"psi": 0.1, "max_drifted_features": 1})) == 2


def test_score_drift_alerts_only_when_the_monitor_says_drifted():
    assert score_alerts({"psi": 0.02, "drifted": False}, {}) == []
    (a,) = score_alerts({"psi": 0.3, "drifted": True, "reasons": ["distribution: PSI 0.300"]}, {"psi": 0.1})
    assert (a["check"], a["subject"], a["value"]) == ("score", "score", 0.3)


def test_score_alerts_carry_the_drift_thresholds():
    score = {**WASSERSTEIN, "psi": 0.25}
    alerts = evaluate({"drift": {"features": {}, "drifted": [], "score": score}}, {"drift": LIMITS}, checks=("score",))
    assert [(a["check"], a["figure"], a["value"], a["threshold"]) for a in alerts] == [("score", "psi", 0.25, 0.1)]


@pytest.mark.parametrize("now, expected", [
    ({"auroc": 0.92, "ece": 0.05}, []),                                     # as validated
    ({"auroc": 0.86, "ece": 0.05}, [("auroc", "drop_vs_validation")]),      # 0.06 below validation
    ({"auroc": 0.79, "ece": 0.05}, [("auroc", "auroc"), ("auroc", "drop_vs_validation")]),  # below the floor too
    ({"auroc": 0.92, "ece": 0.15}, [("ece", "ece")]),                       # calibration ceiling
    ({"auroc": None, "ece": None}, []),                                     # undefined figures raise nothing
])
def test_quality_floors_ceilings_and_drop_against_validation(now, expected):
    alerts = quality_alerts(now, {"auroc": 0.92, "ece": 0.04}, THRESHOLDS["quality"])
    assert [(a["subject"], a["figure"]) for a in alerts] == expected


def test_a_drop_alert_carries_the_validation_figure_and_the_drop():
    (a,) = quality_alerts({"pr_auc": 0.30}, {"pr_auc": 0.45}, {"max_drop": 0.05})
    assert a["value"] == pytest.approx(0.15) and a["threshold"] == 0.05 and a["validation"] == 0.45
    assert a["op"] == ">" and "below validation" in a["message"]


def test_a_lower_is_better_metric_alerts_on_a_rise_only_when_asked():
    assert quality_alerts({"brier": 0.09}, {"brier": 0.02}, {"max_drop": 0.05}) == []
    (a,) = quality_alerts({"brier": 0.09}, {"brier": 0.02}, {"max_rise": 0.05})
    assert a["figure"] == "rise_vs_validation"


def test_fairness_differences_above_their_maximum():
    figures = {"sensitive": "age_band", "demographic_parity_difference": 0.15, "equalized_odds_difference": 0.1}
    (a,) = fairness_alerts(figures, THRESHOLDS["fairness"])
    assert (a["subject"], a["figure"], a["value"], a["threshold"]) == (
        "age_band", "demographic_parity_difference", 0.15, 0.1)
    assert fairness_alerts({**figures, "demographic_parity_difference": None}, THRESHOLDS["fairness"]) == []


def test_evaluate_runs_only_the_checks_asked_for_and_skips_absent_sections():
    figures = {"drift": _drift(amount=True), "quality": {"overall": {"auroc": 0.5}, "validation": {"auroc": 0.9}},
               "fairness": None}
    assert {a["check"] for a in evaluate(figures, THRESHOLDS)} == {"drift", "quality"}
    assert {a["check"] for a in evaluate(figures, THRESHOLDS, checks=["quality"])} == {"quality"}
    assert evaluate({"drift": _drift(amount=False)}, THRESHOLDS) == []


def test_the_default_monitor_config_does_not_alert_on_a_class_weighted_models_calibration():
    from omegaconf import OmegaConf

    from factory import compose

    limits = OmegaConf.to_container(compose("monitor", [], check=False).monitor.quality)
    assert limits["max_ece"] is None
    # Healthy models trained with a positive-class weight: scores inflated by design (measured ECE 0.42 and 0.037).
    healthy = {"auroc": 0.95, "pr_auc": 0.7, "ece": 0.42, "brier": 0.08}
    assert quality_alerts(healthy, {"auroc": 0.95, "pr_auc": 0.7}, limits) == []
    (a,) = quality_alerts(healthy, {}, {**limits, "max_ece": 0.1})  # the knob stays, set per model
    assert (a["figure"], a["value"], a["threshold"]) == ("ece", 0.42, 0.1)
