"""The fraud generator's drift knobs: off, they leave the table of old byte for byte; on, each
moves what it says and nothing else."""
from __future__ import annotations

import numpy as np
import pytest

from factory.data.fingerprint import table_fingerprint
from factory.data.sources import FraudSource

# table_fingerprint of FraudSource() (50,000 rows, seed 42) and of FraudSource(3000, 0.05, 7),
# computed with the generator before any drift knob existed (commit d545e15).
DEFAULT_TABLE = "de84565d9482d9c68d67a60ed9cf48e12880f9b564db76afc09d860ee36bc0f7"
SMALL_TABLE = "2e1fe70661bd952edadd0afe27ea39a59f7746bc1d92f0ea121b6cc1534f20c5"


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


def test_world_seed_is_range_checked():
    with pytest.raises(Exception, match=r"^data.source.world_seed: must be in \[0, 4294967295\], got -1$"):
        FraudSource(world_seed=-1)
