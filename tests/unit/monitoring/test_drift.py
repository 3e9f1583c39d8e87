"""Drift against a profile: each figure on small tables, planted drift flagged, no drift not, streaming."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from factory.data.sources import FraudSource
from factory.errors import ConfigError
from factory.monitoring.drift import DEFAULT_THRESHOLDS, DriftMonitor, psi
from factory.monitoring.profile import build_profile

KINDS = {"amount": "numeric", "channel": "categorical"}


def _small(n: int, seed: int, shift: float = 0.0, channels=("a", "b", "c")) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"amount": rng.normal(shift, 1.0, n), "channel": rng.choice(list(channels), n),
                     "score": rng.random(n)})


def _monitor(profile, *tables, **kw) -> dict:
    monitor = DriftMonitor(profile, **kw)
    for table in tables:
        monitor.update(table)
    return monitor.result()


def test_psi():
    assert psi(np.array([50.0, 50.0]), np.array([5.0, 5.0])) == 0.0
    # (0.9 - 0.5) ln(0.9/0.5) + (0.1 - 0.5) ln(0.1/0.5)
    assert psi(np.array([1.0, 1.0]), np.array([9.0, 1.0])) == pytest.approx(0.4 * np.log(1.8) + 0.4 * np.log(5))


def test_three_rows():
    reference = pa.table({"amount": [1.0, 2.0, None], "channel": ["a", "b", "a"]})
    profile = build_profile(reference, KINDS, [0.1, 0.2, 0.3], bins=2)
    result = _monitor(profile, pa.table({"amount": [1.0, None, None], "channel": ["a", "zzz", None],
                                         "score": [0.1, 0.2, 0.3]}))
    amount, channel = result["features"]["amount"], result["features"]["channel"]
    assert result["rows"] == 3 and amount["rows"] == 3
    assert amount["missing_rate"] == pytest.approx(2 / 3) and amount["missing_delta"] == pytest.approx(1 / 3)
    assert amount["counts"] == [1, 0] and amount["ks_pvalue"] is not None and amount["wasserstein"] == 0.5
    assert channel["unseen_rate"] == 0.5 and channel["unseen_levels"] == 1 and "top_unseen" not in channel
    assert channel["drifted"] and any("unseen" in r for r in channel["reasons"])
    assert result["score"]["psi"] == 0.0
    json.dumps(result, allow_nan=False)  # strict JSON as it stands


def test_a_feature_absent_from_the_window_is_marked():
    profile = build_profile(_small(100, 0), KINDS, np.zeros(100))
    result = _monitor(profile, pa.table({"amount": [0.0, 1.0]}))
    assert result["features"]["channel"] == {"rows": 0, "drifted": False, "reasons": [], "absent": True}
    assert result["score"]["absent"]


def test_planted_drift_flags_that_feature_only():
    reference = _small(5000, 0)
    profile = build_profile(reference, KINDS, reference.column("score"))
    assert _monitor(profile, _small(2000, 1))["drifted"] == []
    assert _monitor(profile, _small(2000, 2, shift=0.5))["drifted"] == ["amount"]
    result = _monitor(profile, _small(2000, 3, channels=("a", "a", "a", "c")))
    assert result["drifted"] == ["channel"] and result["features"]["channel"]["chi2_pvalue"] < 1e-6


def test_missing_rate_moves():
    reference = _small(5000, 0)
    profile = build_profile(reference, KINDS, reference.column("score"))
    window = _small(2000, 1)
    amount = window.column("amount").to_numpy().copy()
    amount[:200] = np.nan  # 10% missing
    result = _monitor(profile, window.set_column(0, "amount", pa.array(amount, from_pandas=True)))
    assert result["drifted"] == ["amount"] and "missing rate 0.0% -> 10.0%" in result["features"]["amount"]["reasons"][0]


def test_streaming_equals_one_shot():
    reference = _small(3000, 0)
    profile = build_profile(reference, KINDS, reference.column("score"))
    window = _small(5000, 4, shift=0.1)
    one = _monitor(profile, window, sample_rows=1000, seed=7)
    streamed = _monitor(profile, *window.to_batches(max_chunksize=333), sample_rows=1000, seed=7)
    assert streamed == one


def test_the_reservoir_is_bounded_and_uniform():
    profile = build_profile(_small(100, 0), KINDS, np.zeros(100))
    monitor = DriftMonitor(profile, sample_rows=500)
    n = 50_000
    for start in range(0, n, 4096):
        rows = np.arange(start, min(start + 4096, n), dtype=float)
        monitor.update(pa.table({"amount": rows}))
    reservoir = monitor._state["amount"].reservoir
    assert len(reservoir) == 500 and len(np.unique(reservoir)) == 500
    from scipy.stats import kstest

    # Each position of the stream equally likely: a reservoir favouring early or late rows fails this.
    assert kstest(reservoir, "uniform", args=(0, n)).pvalue > 0.001


def test_thresholds_override_and_unknown_keys():
    reference = _small(5000, 0)
    profile = build_profile(reference, KINDS, reference.column("score"))
    window = _small(2000, 2, shift=0.5)
    assert _monitor(profile, window, thresholds={"psi": 10, "wasserstein_std": 10})["drifted"] == []
    assert _monitor(profile, window)["thresholds"] == DEFAULT_THRESHOLDS
    with pytest.raises(ConfigError, match="unknown key.*psy"):
        DriftMonitor(profile, {"psy": 0.2})


# The fraud generator: a reference cut from training data, traffic from the same world (world_seed).

def _score(table) -> np.ndarray:
    """A stand-in model: a fixed function of two features (what matters is that traffic is scored alike)."""
    z = np.log(table.column("amount").to_numpy()) - 4 + 0.3 * table.column("tx_velocity_24h").to_numpy()
    return 1 / (1 + np.exp(-z))


@pytest.fixture(scope="module")
def fraud_profile():
    train = FraudSource(rows=20_000, seed=1).load().table
    schema = FraudSource().load().schema
    reference = train.slice(0, 3000)
    known = {c: pc.unique(train[c].drop_null()).to_pylist() for c in schema.categorical}
    return build_profile(reference, schema.features, _score(reference), known_levels=known)


def _traffic(seed: int, rows: int = 2000, **knobs) -> pa.Table:
    table = FraudSource(rows=rows, seed=seed, world_seed=1, **knobs).load().table
    return table.append_column("score", pa.array(_score(table)))


def test_no_drift_false_alarm_rate_is_at_most_5_percent(fraud_profile):
    """The same generator and world, new seeds: features x windows flagged <= 5% (measured: 0 of 220)."""
    cells = flagged = 0
    for seed in range(2, 22):
        result = _monitor(fraud_profile, _traffic(seed))
        cells += len(result["features"]) + 1
        flagged += len(result["drifted"]) + result["score"]["drifted"]
    assert flagged / cells <= 0.05


def test_a_planted_amount_shift_flags_amount_and_the_score_only(fraud_profile):
    result = _monitor(fraud_profile, _traffic(50, shift={"amount": 0.5}))
    assert result["drifted"] == ["amount"] and result["score"]["drifted"]


def test_a_new_merchant_category_is_unseen(fraud_profile):
    result = _monitor(fraud_profile, _traffic(51, new_category={"name": "crypto_exchange", "share": 0.05}))
    category = result["features"]["merchant_category"]
    assert category["drifted"] and "top_unseen" not in category and category["unseen_levels"] == 1
    assert "crypto_exchange" not in str(result) and "M05" not in str(result)  # counts only, no traffic values
    assert 0.03 < category["unseen_rate"] < 0.07


def test_unseen_values_are_counts_only_unless_asked_and_then_cut():
    reference = pa.table({"amount": [1.0, 2.0, 3.0], "channel": ["a", "b", "a"]})
    profile = build_profile(reference, KINDS, [0.1, 0.2, 0.3], bins=2)
    long = "x" * 100
    window = pa.table({"amount": [1.0] * 4, "channel": ["alice@example.com", "alice@example.com", long, "a"],
                       "score": [0.1] * 4})
    quiet = _monitor(profile, window)["features"]["channel"]
    assert quiet["unseen_levels"] == 2 and quiet["unseen_rate"] == 0.75 and "top_unseen" not in quiet
    assert "alice" not in json.dumps(quiet) and "xxx" not in json.dumps(quiet)
    assert quiet["reasons"] == ["unseen levels: 75.0% of values (2 distinct)"]
    shown = _monitor(profile, window, show_unseen=1)["features"]["channel"]
    assert shown["top_unseen"] == {"alice@example.com": 2} and "'alice@example.com'" in shown["reasons"][0]
    cut = _monitor(profile, window, show_unseen=5)["features"]["channel"]["top_unseen"]
    assert cut["x" * 31 + "\u2026"] == 1 and max(map(len, cut)) == 32
