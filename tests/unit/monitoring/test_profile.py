"""The reference profile: histograms, level counts, the sample, strict JSON, loading it back."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from factory.errors import DataError, FactoryError
from factory.monitoring.profile import bin_counts, build_profile, load_profile

KINDS = {"amount": "numeric", "channel": "categorical"}


def _three_rows():
    return pa.table({"amount": [1.0, None, 3.0], "channel": ["web", "", "shop"], "label": [0, 1, 0]})


def test_three_rows():
    profile = build_profile(_three_rows(), KINDS, [0.1, 0.9, 0.5], bins=2)
    amount, channel = profile.features["amount"], profile.features["channel"]
    assert amount["missing"] == 1 and amount["missing_rate"] == pytest.approx(1 / 3)
    assert (amount["min"], amount["max"], amount["mean"]) == (1.0, 3.0, 2.0)
    assert amount["edges"] == [2.0] and amount["counts"] == [1, 1]  # bins (-inf, 2], (2, inf)
    assert channel["counts"] == {"shop": 1, "web": 1} and channel["missing"] == 1  # "" is missing
    assert channel["known"] == ["shop", "web"]
    assert profile.score["counts"] == [2, 1] and profile.rows == 3
    assert profile.sample.column_names == ["amount", "channel", "score"] and profile.sample.num_rows == 3
    assert profile.meta["kinds"] == KINDS


def test_bins_are_left_open_right_closed():
    assert bin_counts(np.array([1.0, 2.0, 2.5, 9.0]), [2.0, 3.0]).tolist() == [2, 1, 1]


def test_quantile_bins_hold_equal_shares():
    values = np.random.default_rng(0).lognormal(size=10_000)
    profile = build_profile(pa.table({"amount": values, "channel": ["a"] * 10_000}), KINDS, values)
    assert len(profile.features["amount"]["edges"]) == 9
    assert all(abs(c - 1000) <= 1 for c in profile.features["amount"]["counts"])


def test_a_binary_feature_keeps_its_two_values_apart():
    values = np.array([0.0] * 90 + [1.0] * 10)
    entry = build_profile(pa.table({"amount": values, "channel": ["a"] * 100}), KINDS, values).features["amount"]
    assert entry["counts"][0] == 90 and sum(entry["counts"]) == 100


def test_levels_are_capped_with_an_other_share():
    from factory.monitoring.profile import categorical_entry

    table = pa.table({"amount": [1.0] * 6, "channel": ["a", "a", "a", "b", "b", "c"]})
    entry = categorical_entry(table.column("channel"), max_levels=2)
    assert entry["counts"] == {"a": 3, "b": 2} and entry["other"] == 1 and entry["levels"] == 3


def test_known_levels_come_from_training():
    profile = build_profile(_three_rows(), KINDS, [0, 0, 0], known_levels={"channel": ["web", "shop", "app"]})
    assert profile.features["channel"]["known"] == ["app", "shop", "web"]


def test_the_sample_is_uniform_and_bounded():
    n = 5000
    table = pa.table({"amount": np.arange(n, dtype=float), "channel": ["a"] * n})
    profile = build_profile(table, KINDS, np.zeros(n), sample_rows=500, seed=3)
    sample = profile.sample.column("amount").to_numpy()
    assert len(sample) == 500 and len(np.unique(sample)) == 500
    assert 2000 < sample.mean() < 3000  # drawn over the whole table, not its head
    assert build_profile(table, KINDS, np.zeros(n), sample_rows=0).sample is None


def test_saved_as_strict_json_and_read_back(tmp_path):
    profile = build_profile(pa.table({"amount": [None, None], "channel": ["a", "b"]}), KINDS, [0.5, 0.5],
                            meta={"task": "binary", "val_metrics": {"loss": float("nan")}})
    path = profile.save(tmp_path)
    text = path.read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    loaded = load_profile(tmp_path)
    assert loaded.features == json.loads(json.dumps(profile.features))
    assert loaded.meta["val_metrics"]["loss"] is None and loaded.sample.num_rows == 2
    assert load_profile(path).rows == 2  # the file itself


def test_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(DataError, match="'channel'"):
        build_profile(pa.table({"amount": [1.0]}), KINDS, [0.5])
    with pytest.raises(DataError, match="2 scores for 3 rows"):
        build_profile(_three_rows(), KINDS, [0.5, 0.5])
    with pytest.raises(FactoryError, match="no reference profile"):
        load_profile(tmp_path)


def test_a_registered_copy_is_checked(tmp_path):
    from factory.registry.capture import sha256
    from factory.rundir.layout import PROFILE

    build_profile(_three_rows(), KINDS, [0.1, 0.2, 0.3]).save(tmp_path)
    meta = {"profile": {"files": {PROFILE: {"sha256": sha256(tmp_path / PROFILE)}}}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    assert load_profile(tmp_path).rows == 3
    (tmp_path / PROFILE).write_text((tmp_path / PROFILE).read_text().replace('"rows": 3', '"rows": 4'))
    with pytest.raises(FactoryError, match="sha256"):
        load_profile(tmp_path)
