"""The fraud generator's drift knobs: off, they leave the table of old byte for byte; on, each
moves what it says and nothing else."""
from __future__ import annotations

import numpy as np
import pytest

from factory.data.fingerprint import table_fingerprint
from factory.data.sources import FraudSource

# table_fingerprint of FraudSource() (50,000 rows, seed 42) and of FraudSource(3000, 0.05, 7),
# computed with the generator before any drift knob existed (commit d545e15: de84565d..., 2e1fe706...
# by the fingerprint of then, which also hashed the bytes under null slots; the same tables give
# these since the fingerprint ignores them, commit 33f54aa).
DEFAULT_TABLE = "e45408b77884ed0786c902e210a56aa02eb90c053837e942d356d1c3c1753c6c"
SMALL_TABLE = "fe8038b89f2dfbba5137460a9f76162aa39a9693c19f40dca5a434bda9ce24d0"


def _categories(table) -> dict[str, str]:
    """merchant_id -> merchant_category (null categories left out)."""
    pairs = zip(table["merchant_id"].to_pylist(), table["merchant_category"].to_pylist())
    return dict(sorted((m, c) for m, c in pairs if c is not None))


def test_default_table_is_the_one_before_the_knobs():
    assert table_fingerprint(FraudSource().load().table) == DEFAULT_TABLE
    assert table_fingerprint(FraudSource(3000, 0.05, 7).load().table) == SMALL_TABLE


def test_world_seed_equal_to_seed_is_the_default_table():
    assert table_fingerprint(FraudSource(3000, 0.05, 7, world_seed=7).load().table) == SMALL_TABLE


def test_one_world_two_transaction_seeds():
    """Fresh traffic from the training world: the same merchants, new transactions."""
    train = FraudSource(rows=20000, seed=1).load().table
    traffic = FraudSource(rows=20000, seed=2, world_seed=1).load().table
    moved = FraudSource(rows=20000, seed=2).load().table  # a new world: the merchants moved
    assert table_fingerprint(train) != table_fingerprint(traffic)
    ours, theirs, other = _categories(train), _categories(traffic), _categories(moved)
    shared = ours.keys() & theirs.keys()
    assert len(shared) > 300 and all(ours[m] == theirs[m] for m in shared)
    assert sum(ours[m] != other[m] for m in ours.keys() & other.keys()) > 100

    def shares(table):
        values, counts = np.unique(np.array(table["merchant_category"].drop_null()), return_counts=True)
        return dict(zip(values, counts / counts.sum()))

    a, b = shares(train), shares(traffic)
    assert max(abs(a[k] - b.get(k, 0.0)) for k in a) < 0.03


def _build(*overrides: str):
    """The FraudSource a composed config builds (``data.source``), as training would."""
    from factory.config import compose
    from factory.config.instantiate import build

    cfg = compose("train", ["data=fraud", "data.source.rows=3000", "data.source.seed=7", *overrides], check=False)
    return build(cfg.data.source, "data.source")


def test_knobs_given_but_off_leave_the_table_alone():
    off = FraudSource(3000, 0.05, 7, world_seed=7, shift={}, sensitive={"disparity": 0.0}).load()
    assert off.schema.features["customer_age_band"] == "categorical"
    assert table_fingerprint(off.table.drop_columns(["customer_age_band"])) == SMALL_TABLE
    assert table_fingerprint(_build("data.source.fraud_rate=0.05", "data.source.shift={amount:0}").load().table) == SMALL_TABLE


@pytest.mark.parametrize("column, k, whole", [("amount", 0.5, False), ("distance_from_home_km", -0.3, False),
                                              ("hour", 0.5, True), ("tx_velocity_24h", 1.2, True)])
def test_a_shift_moves_only_its_column_by_k_reference_sds(column, k, whole):
    from factory.data.sources.fraud import _REFERENCE_SD

    before = FraudSource(rows=20000, seed=5).load().table
    after = FraudSource(rows=20000, seed=5, shift={column: k}).load().table
    assert after.drop_columns([column]).equals(before.drop_columns([column]))  # label and the rest: row for row
    old, new = (np.array(t[column].drop_null(), dtype=float) for t in (before, after))
    assert after[column].null_count == before[column].null_count
    moved = (new.mean() - old.mean()) / _REFERENCE_SD[column]
    assert moved == pytest.approx(k, abs=0.02 if whole else 1e-3)
    assert after[column].type == before[column].type
    if whole:  # rounded down or up, each by less than one
        assert np.all(np.abs(new - old - k * _REFERENCE_SD[column]) < 1)


def test_the_reference_sds_are_the_default_worlds():
    """Not the sds of the table a shift is applied to: the fixed ones, here re-measured."""
    from factory.data.sources.fraud import _REFERENCE_SD

    table = FraudSource(rows=200_000, seed=42).load().table
    for column, sd in _REFERENCE_SD.items():
        assert np.array(table[column].drop_null(), dtype=float).std() == pytest.approx(sd, rel=0.1), column


def test_a_new_fraud_rate_keeps_the_features_and_redraws_the_labels():
    low = FraudSource(rows=40000, fraud_rate=0.015, seed=9, world_seed=1).load().table
    high = FraudSource(rows=40000, fraud_rate=0.05, seed=9, world_seed=1).load().table
    assert high.drop_columns(["is_fraud"]).equals(low.drop_columns(["is_fraud"]))
    assert np.mean(high["is_fraud"]) == pytest.approx(0.05, abs=0.006)


def test_a_new_category_takes_its_share_with_unseen_merchants():
    trained = FraudSource(rows=40000, seed=1).load().table
    source = FraudSource(rows=40000, seed=2, world_seed=1, fraud_rate=0.02,
                         new_category={"name": "crypto_exchange", "share": 0.1})
    table = source.load().table
    category = np.array(table["merchant_category"].fill_null(""))
    new = category == "crypto_exchange"
    assert new.sum() / np.sum(category != "") == pytest.approx(0.1, abs=0.01)
    assert "crypto_exchange" not in set(trained["merchant_category"].to_pylist())
    merchants = np.array(table["merchant_id"])
    assert set(merchants[new]) <= {f"M{i:04d}" for i in range(500, 520)}
    assert not set(merchants[new]) & set(trained["merchant_id"].to_pylist())
    assert np.median(np.array(table["amount"])[new]) == pytest.approx(150, rel=0.15)
    assert np.mean(table["is_fraud"]) == pytest.approx(0.02, abs=0.004)  # the intercept still gives the rate
    # Risk 1.0 on the categories' scale: riskier than the rest on average.
    fraud = np.array(table["is_fraud"])
    assert fraud[new].mean() > 1.5 * fraud[~new].mean()


def test_the_sensitive_column_has_its_shares_and_no_effect_at_zero_disparity():
    table = FraudSource(rows=60000, seed=4, fraud_rate=0.05, sensitive={}).load().table
    groups = np.array(table["customer_age_band"])
    shares = {g: np.mean(groups == g) for g in ("18-29", "30-49", "50+")}
    assert shares == pytest.approx({"18-29": 0.22, "30-49": 0.38, "50+": 0.40}, abs=0.015)
    fraud = np.array(table["is_fraud"])
    rates = [fraud[groups == g].mean() for g in shares]
    assert max(rates) - min(rates) < 0.01


def test_disparity_raises_the_named_groups_fraud_rate():
    """A logit of +2 for one group: about 2.5 times the others' fraud rate at the default rate."""
    source = FraudSource(rows=60000, seed=4, sensitive={"group": "50+", "disparity": 2.0})
    table = source.load().table
    groups, fraud = np.array(table["customer_age_band"]), np.array(table["is_fraud"])
    named, others = fraud[groups == "50+"].mean(), fraud[groups != "50+"].mean()
    assert 2.0 * others < named < 3.2 * others
    assert fraud.mean() == pytest.approx(0.015, abs=0.003)
    assert list(source.schema.features)[-1] == "customer_age_band"


def test_knobs_through_a_composed_config():
    source = _build("data.source.world_seed=1", "data.source.shift={hour:1}",
                    "data.source.new_category={name:crypto_exchange,share:0.05}",
                    "data.source.sensitive={column:age_band,disparity:1.0}")
    loaded = source.load()
    assert "age_band" in loaded.schema.features and "crypto_exchange" in loaded.table["merchant_category"].to_pylist()
    assert source.shift.hour == 1 and source.new_category.amount == 150.0


def _config_errors(*overrides: str) -> list[str]:
    """The data.source lines of the ConfigError validation gives."""
    from factory.config import compose, validate
    from factory.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        validate(compose("train", list(overrides), check=False))
    return [line for line in str(info.value).splitlines() if line.startswith("data.source")]


@pytest.mark.parametrize("override, knobs, expected", [
    ("data.source.shift={amont:0.5}", {"shift": {"amont": 0.5}},
     "data.source.shift.amont: unknown key (did you mean amount?); nothing reads it"),
    ("data.source.shift={is_foreign:0.5}", {"shift": {"is_foreign": 0.5}},
     "data.source.shift.is_foreign: unknown key; nothing reads it"),
    ("data.source.shift={amount:50}", {"shift": {"amount": 50}},
     "data.source.shift.amount: must be in [-10, 10], got 50"),
    ("data.source.new_category={share:0}", {"new_category": {"share": 0}},
     "data.source.new_category.share: must be in (0, 1], got 0"),
    ("data.source.sensitive={group:kids}", {"sensitive": {"group": "kids"}},
     "data.source.sensitive.group: 'kids' is not one of: 18-29, 30-49, 50+"),
    ("data.source.sensitive={disparity:-6}", {"sensitive": {"disparity": -6}},
     "data.source.sensitive.disparity: must be in [-5, 5], got -6"),
    ("data.source.world_seed=-1", {"world_seed": -1},
     "data.source.world_seed: must be in [0, 4294967295], got -1"),
])
def test_a_bad_knob_is_one_line_naming_its_key(override, knobs, expected):
    from factory.errors import DataError

    assert _config_errors(override) == [expected]
    with pytest.raises(DataError) as info:
        FraudSource(**knobs)
    assert str(info.value) == expected


@pytest.mark.parametrize("knobs, expected", [
    ({"new_category": {"name": "grocery"}}, "data.source.new_category.name: 'grocery' is a category already"),
    ({"sensitive": {"column": "amount"}}, "data.source.sensitive.column: 'amount' is a column already"),
    ({"sensitive": {"column": "is_fraud"}}, "data.source.sensitive.column: 'is_fraud' is a column already"),
    ({"shift": 0.5}, "data.source.shift: expected a mapping, got float 0.5"),
])
def test_a_knob_that_collides_is_refused_when_built(knobs, expected):
    from factory.errors import DataError

    with pytest.raises(DataError) as info:
        FraudSource(**knobs)
    assert str(info.value) == expected
