"""stratified_split: a deterministic partition, stratified, with validated fractions."""
from __future__ import annotations

import numpy as np
import pytest

from factory.data.split import stratified_split
from factory.errors import ConfigError

Y = np.array(["a"] * 60 + ["b"] * 30 + ["c"] * 10)


def _assert_partition(parts: dict[str, np.ndarray], n: int) -> None:
    rows = np.concatenate([parts["train"], parts["val"], parts["test"]])
    assert sorted(rows.tolist()) == list(range(n))
    assert all(p.dtype == np.int64 and (np.diff(p) > 0).all() for p in parts.values())


def test_same_seed_same_split_other_seed_differs():
    first = stratified_split(Y, 0.2, 0.1, seed=3)
    again = stratified_split(Y, 0.2, 0.1, seed=3)
    other = stratified_split(Y, 0.2, 0.1, seed=4)
    assert all(np.array_equal(first[s], again[s]) for s in first)
    assert not np.array_equal(first["val"], other["val"])
    _assert_partition(first, len(Y))


def test_each_class_is_split_in_proportion():
    parts = stratified_split(Y, 0.2, 0.1, seed=0)
    for label, n in (("a", 60), ("b", 30), ("c", 10)):
        assert (Y[parts["val"]] == label).sum() == round(n * 0.2)
        assert (Y[parts["test"]] == label).sum() == round(n * 0.1)


def test_regression_split_shuffles_all_rows_together():
    y = np.linspace(0, 1, 50)
    parts = stratified_split(y, 0.2, 0.2, seed=0, stratify=False)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [30, 10, 10]
    assert parts["test"].max() > 25  # not simply the first rows
    _assert_partition(parts, 50)


def test_rare_classes_stay_in_train():
    y = np.array([0] * 20 + [1] * 2 + [2])
    parts = stratified_split(y, 0.4, 0.4, seed=0)
    train = y[parts["train"]]
    assert {1, 2} <= set(train.tolist())
    assert (train == 2).sum() == 1 and (train == 1).sum() == 1
    _assert_partition(parts, len(y))


def test_zero_fractions_give_empty_splits():
    parts = stratified_split(Y, 0.0, 0.0, seed=0)
    assert len(parts["train"]) == len(Y) and len(parts["val"]) == len(parts["test"]) == 0


@pytest.mark.parametrize(
    ("val", "test", "key"),
    [
        (1.0, 0.1, "data.val_fraction"),
        (0.1, -0.1, "data.test_fraction"),
        (0.5, 0.5, "data.val_fraction + data.test_fraction"),
    ],
)
def test_bad_fractions_name_the_config_key(val, test, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("+", r"\+")) as info:
        stratified_split(Y, val, test, seed=0)
    assert "\n" not in str(info.value)
