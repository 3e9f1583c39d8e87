"""Fairness figures by a sensitive attribute: hand-checked tables, planted disparity, small groups."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from factory.errors import DataError
from factory.monitoring.fairness import MISSING_GROUP, fairness_figures


def _strict(figures: dict) -> dict:
    return json.loads(json.dumps(figures, allow_nan=False))


def test_three_rows_by_hand():
    # a: predictions 1, 0 (selection 1/2); b: 0 (selection 0) -> parity difference 0.5
    figures = fairness_figures(["a", "a", "b"], [1, 0, 0], min_group_size=1)
    assert figures["groups"]["a"] == {"rows": 2, "selection_rate": 0.5, "tpr": None, "fpr": None,
                                      "judged": True, "reasons": []}
    assert figures["groups"]["b"]["selection_rate"] == 0.0
    assert figures["demographic_parity_difference"] == 0.5
    assert figures["equalized_odds_difference"] is None  # no true labels
    assert figures["unjudged"] == [] and figures["rows"] == 3
    assert _strict(figures) == figures


def test_rates_with_labels_by_hand():
    # a: true 1,1,0 pred 1,0,1 -> TPR 1/2, FPR 1/1; b: true 1,0,0 pred 1,0,0 -> TPR 1, FPR 0
    groups = ["a", "a", "a", "b", "b", "b"]
    figures = fairness_figures(groups, [1, 0, 1, 1, 0, 0], [1, 1, 0, 1, 0, 0], min_group_size=1, min_class_size=1)
    a, b = figures["groups"]["a"], figures["groups"]["b"]
    assert (a["tpr"], a["fpr"], a["positives"], a["negatives"]) == (0.5, 1.0, 2, 1)
    assert (b["tpr"], b["fpr"]) == (1.0, 0.0)
    assert figures["demographic_parity_difference"] == pytest.approx(2 / 3 - 1 / 3)
    assert figures["equalized_odds_difference"] == pytest.approx(1.0)  # max(|0.5-1|, |1-0|)


def test_text_labels_arrow_inputs_and_missing_groups():
    groups = pa.chunked_array([["x", None], ["y", "x"]])
    figures = fairness_figures(groups, np.array(["fraud", "legit", "fraud", "legit"]),
                               pa.array(["fraud", "fraud", "legit", "legit"]),
                               positive_label="fraud", min_group_size=1, min_class_size=1)
    assert set(figures["groups"]) == {"x", "y", MISSING_GROUP}
    assert figures["groups"][MISSING_GROUP]["selection_rate"] == 0.0
    assert figures["groups"]["y"]["fpr"] == 1.0 and figures["groups"]["y"]["tpr"] is None  # no positives in y
    assert figures["positive_label"] == "fraud"


def test_numeric_groups_nan_is_missing_and_labels_compare_as_numbers():
    figures = fairness_figures(np.array([1.0, np.nan, 2.0, 2.0]), [True, False, True, False],
                               positive_label="1", min_group_size=1)
    assert figures["groups"] == {
        "1": {"rows": 1, "selection_rate": 1.0, "tpr": None, "fpr": None, "judged": True, "reasons": []},
        "2": {"rows": 2, "selection_rate": 0.5, "tpr": None, "fpr": None, "judged": True, "reasons": []},
        MISSING_GROUP: {"rows": 1, "selection_rate": 0.0, "tpr": None, "fpr": None, "judged": True, "reasons": []}}


def test_rows_with_a_missing_prediction_or_label_are_left_out_and_counted():
    figures = fairness_figures(["a", "a", "b", "b"], [1.0, np.nan, 0.0, 1.0], [1, 1, None, 0],
                               min_group_size=1, min_class_size=1)
    assert figures["rows"] == 2 and figures["missing_rows"] == 2
    assert figures["groups"]["a"]["rows"] == 1 and figures["groups"]["b"]["fpr"] == 1.0


def _planted(seed: int = 0):
    """Groups A and B (2,000 rows each) selected at 30% and 10%, and C with 12 rows."""
    rng = np.random.default_rng(seed)
    groups = np.array(["A"] * 2000 + ["B"] * 2000 + ["C"] * 12)
    rate = np.select([groups == "A", groups == "B"], [0.3, 0.1], 0.9)
    y_true = (rng.random(len(groups)) < 0.2).astype(int)
    # predictions: the true label, flipped to positive at the group's rate among negatives
    y_pred = np.where(y_true == 1, rng.random(len(groups)) < 0.8, rng.random(len(groups)) < rate).astype(int)
    return groups, y_pred, y_true


def test_planted_disparity_is_measured_and_the_small_group_is_not_judged():
    groups, y_pred, y_true = _planted()
    figures = fairness_figures(groups, y_pred, y_true)
    selection = {g: y_pred[groups == g].mean() for g in "ABC"}
    for g in "AB":
        assert figures["groups"][g]["selection_rate"] == pytest.approx(selection[g])
        assert figures["groups"][g]["judged"] and figures["groups"][g]["judged_odds"]
    fpr = {g: y_pred[(groups == g) & (y_true == 0)].mean() for g in "AB"}
    tpr = {g: y_pred[(groups == g) & (y_true == 1)].mean() for g in "AB"}
    assert figures["groups"]["A"]["fpr"] == pytest.approx(fpr["A"])
    # C (12 rows, selected at ~90%) would dominate both differences; it is reported, never judged
    c = figures["groups"]["C"]
    assert c["rows"] == 12 and not c["judged"] and "min_group_size 30" in c["reasons"][0]
    assert figures["unjudged"] == ["C"]
    assert figures["demographic_parity_difference"] == pytest.approx(abs(selection["A"] - selection["B"]))
    assert 0.15 < figures["demographic_parity_difference"] < 0.25  # planted: 0.8 * (0.3 - 0.1) = 0.16 + noise
    assert figures["equalized_odds_difference"] == pytest.approx(
        max(abs(fpr["A"] - fpr["B"]), abs(tpr["A"] - tpr["B"])))
    assert 0.15 < figures["equalized_odds_difference"] < 0.25  # planted FPR gap 0.2


def test_no_disparity_measures_near_zero():
    rng = np.random.default_rng(1)
    groups = rng.choice(["A", "B"], 20_000)
    figures = fairness_figures(groups, (rng.random(20_000) < 0.2).astype(int))
    assert figures["demographic_parity_difference"] < 0.02


def test_a_group_with_too_few_positives_stays_out_of_equalized_odds_only():
    groups = np.array(["A"] * 100 + ["B"] * 100 + ["C"] * 100)
    y_true = np.zeros(300, int)
    y_true[:20] = 1      # A: 20 positives
    y_true[100:120] = 1  # B: 20 positives
    y_true[200:203] = 1  # C: 3 positives
    y_pred = y_true.copy()
    y_pred[200:203] = 0  # C misses every positive: TPR 0 would be the whole difference
    figures = fairness_figures(groups, y_pred, y_true)
    assert figures["groups"]["C"]["judged"] and not figures["groups"]["C"]["judged_odds"]
    assert figures["groups"]["C"]["tpr"] == 0.0
    assert figures["unjudged"] == [] and figures["unjudged_odds"] == ["C"]
    assert figures["equalized_odds_difference"] == 0.0  # A and B: perfect
    assert figures["demographic_parity_difference"] == pytest.approx(0.2)  # C selects nobody


def test_one_judged_group_has_no_difference():
    figures = fairness_figures(["A"] * 40 + ["B"] * 5, [1, 0] * 20 + [1] * 5)
    assert figures["demographic_parity_difference"] is None and figures["unjudged"] == ["B"]


def test_a_window_where_nobody_was_selected_is_not_an_error():
    figures = fairness_figures(["a", "b"], ["legit", "legit"], positive_label="fraud", min_group_size=1)
    assert figures["demographic_parity_difference"] == 0.0
    figures = fairness_figures(["a", "b"], [0, 0], [0, 0], min_group_size=1)  # nobody positive either
    assert figures["groups"]["a"]["tpr"] is None and figures["groups"]["a"]["fpr"] == 0.0


@pytest.mark.parametrize("call, message", [
    (lambda: fairness_figures(["a", "b"], [1, 0, 1]), "groups has 2 rows but y_pred has 3"),
    (lambda: fairness_figures(["a", "b"], [1, 0], [1]), "groups has 2 rows but y_true has 1"),
    (lambda: fairness_figures(["a", "b"], ["x", "y"], ["x", "y"], positive_label="fraud"),
     r"positive_label 'fraud' is not among the labels of y_true or y_pred \['x', 'y'\]"),
    (lambda: fairness_figures(["a", "b"], ["x", "y"], positive_label="fraud"),
     r"positive_label 'fraud' is not among y_pred's labels \['x', 'y'\]"),
    (lambda: fairness_figures(["a", "b"], [0, 1], positive_label="fraud"), "positive_label 'fraud' is not a number"),
])
def test_errors_are_one_line(call, message):
    with pytest.raises(DataError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("disparity", [0.0, 3.0])
def test_the_fraud_generators_planted_disparity(disparity):
    """The generator's ``sensitive`` knob raises one age band's fraud logit; its labels, read as
    decisions, show it (3 logits at a 5% fraud rate: about 3x the others' rate) and only then."""
    from factory.data.sources import FraudSource

    table = FraudSource(rows=20_000, seed=4, fraud_rate=0.05, sensitive={
        "column": "customer_age_band", "group": "18-29", "disparity": disparity}).load().table
    figures = fairness_figures(table["customer_age_band"], table["is_fraud"])
    rates = {g: v["selection_rate"] for g, v in figures["groups"].items()}
    assert set(rates) == {"18-29", "30-49", "50+"} and figures["unjudged"] == []
    if disparity:
        assert max(rates, key=rates.get) == "18-29" and rates["18-29"] > 2 * max(rates["30-49"], rates["50+"])
        assert figures["demographic_parity_difference"] == pytest.approx(rates["18-29"] - min(rates.values()))
    else:
        assert figures["demographic_parity_difference"] < 0.015


def _combinations(groups, y_pred, y_true):
    """One row per (group, prediction, label) with its count, as the monitor job streams them."""
    from collections import Counter

    counted = Counter(zip(groups, y_pred, y_true))
    keys = list(counted)
    return [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [counted[k] for k in keys]


def test_counts_give_the_row_figures():
    from factory.monitoring.fairness import fairness_from_counts

    rng = np.random.default_rng(3)
    groups = rng.choice(["a", "b", "c", "d"], 3000, p=[0.4, 0.3, 0.29, 0.01]).tolist()
    y_true = (rng.random(3000) < 0.3).astype(int).tolist()
    y_pred = [int(t if rng.random() < 0.8 else 1 - t) for t in y_true]
    rows = fairness_figures(groups, y_pred, y_true, min_group_size=40)
    counted = fairness_from_counts(*_combinations(groups, y_pred, y_true), min_group_size=40)
    assert counted["labelled_rows"] == 3000 and counted["missing_labels"] == 0
    for name in ("demographic_parity_difference", "equalized_odds_difference", "rows", "unjudged", "unjudged_odds"):
        assert counted[name] == pytest.approx(rows[name]), name
    for group, entry in rows["groups"].items():
        for key in ("rows", "selection_rate", "tpr", "fpr", "positives", "negatives", "judged", "judged_odds"):
            assert counted["groups"][group][key] == pytest.approx(entry[key]), (group, key)
    no_labels = fairness_from_counts(*_combinations(groups, y_pred, [None] * 3000), min_group_size=40)
    assert no_labels["demographic_parity_difference"] == pytest.approx(
        fairness_figures(groups, y_pred, min_group_size=40)["demographic_parity_difference"])


def test_counts_select_over_every_row_and_judge_odds_on_the_labelled_ones():
    from factory.monitoring.fairness import fairness_from_counts

    # Group a: 100 rows, 10 selected; only its selected rows are labelled (as chargebacks arrive).
    groups = ["a"] * 100 + ["b"] * 100
    y_pred = [1] * 10 + [0] * 90 + [1] * 50 + [0] * 50
    y_true = [1] * 10 + [None] * 90 + [1] * 25 + [0] * 25 + [1] * 10 + [0] * 40
    figures = fairness_from_counts(*_combinations(groups, y_pred, y_true), min_group_size=30, min_class_size=5)
    a, b = figures["groups"]["a"], figures["groups"]["b"]
    assert (a["rows"], a["labelled_rows"], b["labelled_rows"]) == (100, 10, 100)
    assert a["selection_rate"] == 0.1 and b["selection_rate"] == 0.5  # over all rows, not the labelled ones
    assert figures["demographic_parity_difference"] == pytest.approx(0.4)
    assert figures["missing_labels"] == 90 and not a["judged_odds"] and b["judged_odds"]
    assert b["tpr"] == pytest.approx(25 / 35) and b["fpr"] == pytest.approx(25 / 65)
    labelled_only = fairness_figures(groups, y_pred, y_true, min_group_size=1)  # the biased row path
    assert labelled_only["groups"]["a"]["selection_rate"] == 1.0
