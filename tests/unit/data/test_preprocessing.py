"""Preprocessor: train-only statistics, missing/unseen levels, targets, JSON state, images."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from factory.data.preprocessing import Preprocessor
from factory.data.spec import TableSchema
from factory.errors import DataError

SCHEMA = TableSchema(
    features={"amount": "numeric", "age": "numeric", "city": "categorical", "shop": "categorical"},
    target="y",
    task="binary",
    positive_label="Yes",
)
TRAIN = pa.table(
    {
        "amount": [1.0, None, 3.0, 5.0],
        "age": [10, 20, 30, 40],
        "city": ["a", "b", None, "a"],
        "shop": ["s1", "s2", "s3", "s1"],
        "y": ["Yes", "No", "No", "Yes"],
    }
)


def _fit(table: pa.Table = TRAIN, schema: TableSchema = SCHEMA, max_onehot: int = 2) -> Preprocessor:
    return Preprocessor.fit(table, schema, max_onehot=max_onehot)


def test_statistics_come_from_the_fitted_table_only():
    pre = _fit()
    val = pa.table({**TRAIN.to_pydict(), "amount": [1000.0, 2000.0, 3000.0, 4000.0]})
    x_val, _, _ = pre.transform(val)
    assert pre.state_dict() == _fit().state_dict()  # transforming val changed nothing
    amount = next(c for c in pre.state_dict()["numeric"] if c["name"] == "amount")
    assert amount["mean"] == pytest.approx(3.0) and amount["std"] == pytest.approx(np.std([1.0, 3.0, 5.0]))
    expected = (np.array([1000.0, 2000.0, 3000.0, 4000.0]) - 3.0) / amount["std"]
    np.testing.assert_allclose(x_val[:, 0], expected, rtol=1e-6)
    x_train, _, _ = pre.transform(TRAIN)
    np.testing.assert_allclose(x_train[:, 1].mean(), 0.0, atol=1e-6)  # age standardized
    np.testing.assert_allclose(x_train[:, 1].std(), 1.0, atol=1e-6)


def test_missing_numeric_is_imputed_with_the_mean_and_flagged():
    pre = _fit()
    assert pre.state_dict()["indicators"] == ["amount"]  # age had no gaps in train
    later = pa.table({**TRAIN.to_pydict(), "age": [None, 20, 30, 40]})
    x, _, _ = pre.transform(later)
    assert x[1, 0] == 0.0  # imputed train mean, standardized
    np.testing.assert_array_equal(x[:, 2], [0.0, 1.0, 0.0, 0.0])  # the indicator column
    assert x[0, 1] == 0.0  # age: imputed, no indicator column for it


def test_categoricals_one_hot_or_embedded_by_max_onehot():
    pre = _fit(max_onehot=2)  # city: 2 levels -> one-hot; shop: 3 levels -> embedded
    spec = pre.input_spec()
    assert spec.embed_cardinalities == [3 + 2]  # shop levels + missing + unseen
    assert spec.n_numeric == 2 + 1 + (2 + 2)  # numerics, indicator, city one-hot
    x, x_cat, _ = pre.transform(TRAIN)
    assert x.shape == (4, spec.n_numeric) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 3:], [[0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 1, 0]])
    assert x_cat.dtype == np.int64 and x_cat[:, 0].tolist() == [2, 3, 4, 2]
    assert _fit(max_onehot=3).input_spec().embed_cardinalities == []


def test_missing_and_unseen_categories_get_their_own_codes():
    pre = _fit()
    later = pa.table({**TRAIN.to_pydict(), "city": ["z", None, "a", "b"], "shop": [None, "new", "s2", "s3"]})
    x, x_cat, _ = pre.transform(later)
    assert x_cat[:, 0].tolist() == [0, 1, 3, 4]  # missing, unseen, s2, s3
    np.testing.assert_array_equal(x[:2, 3:], [[0, 1, 0, 0], [1, 0, 0, 0]])  # city: unseen, missing


def test_dictionary_and_integer_categoricals_encode_like_text():
    encoded = pa.table({**TRAIN.to_pydict(), "city": pa.array(["a", "b", None, "a"]).dictionary_encode()})
    assert np.array_equal(_fit(encoded).transform(TRAIN)[0], _fit().transform(TRAIN)[0])
    ints = pa.table({**TRAIN.to_pydict(), "shop": [7, 8, 9, 7]})
    assert _fit(ints).transform(ints)[1][:, 0].tolist() == [2, 3, 4, 2]


def test_string_target_with_positive_label():
    pre = _fit()
    _, _, y = pre.transform(TRAIN)
    assert y.dtype == np.int64 and y.tolist() == [1, 0, 0, 1]
    assert pre.class_labels == ["No", "Yes"] and pre.input_spec([2, 2]).n_classes == 2


def test_boolean_binary_target_is_0_1():
    schema = TableSchema({"age": "numeric"}, "y", "binary")
    table = pa.table({"age": [1, 2, 3], "y": [True, False, True]})
    assert Preprocessor.fit(table, schema).transform(table)[2].tolist() == [1, 0, 1]


def test_multiclass_labels_map_to_sorted_indices():
    schema = TableSchema({"age": "numeric"}, "animal", "multiclass")
    table = pa.table({"age": [1, 2, 3, 4], "animal": ["dog", "cat", "bird", "cat"]})
    pre = Preprocessor.fit(table, schema)
    assert pre.class_labels == ["bird", "cat", "dog"]
    assert pre.transform(table)[2].tolist() == [2, 1, 0, 1]
    assert pre.input_spec([1, 2, 1]).n_outputs == 3
    with pytest.raises(DataError, match="'animal'.*unseen in training.*'cow'"):
        pre.transform(pa.table({"age": [1], "animal": ["cow"]}))


def test_regression_target_is_float32():
    schema = TableSchema({"age": "numeric"}, "price", "regression")
    table = pa.table({"age": [1, 2, 3], "price": [1, 2, 5]})
    pre = Preprocessor.fit(table, schema)
    y = pre.transform(table)[2]
    assert y.dtype == np.float32 and y.tolist() == [1.0, 2.0, 5.0]
    assert pre.class_labels == [] and pre.input_spec().n_classes == 1


def test_json_round_trip_transforms_identically():
    pre = _fit()
    restored = Preprocessor.from_state_dict(json.loads(json.dumps(pre.state_dict())))
    later = pa.table({**TRAIN.to_pydict(), "city": ["z", None, "a", "b"], "amount": [None, 2.0, 9.0, -1.0]})
    for ours, theirs in zip(pre.transform(later), restored.transform(later)):
        assert ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours, theirs)
    assert restored.input_spec([2, 2]) == pre.input_spec([2, 2])


def test_image_features_are_reshaped_and_standardized_per_pixel():
    schema = TableSchema({f"p{i}": "numeric" for i in range(4)}, "digit", "multiclass", image_shape=(1, 2, 2))
    table = pa.table({"p0": [0, 0, 0], "p1": [1, 2, 3], "p2": [4, None, 6], "p3": [1, 1, 2], "digit": [0, 1, 2]})
    pre = Preprocessor.fit(table, schema)
    x, x_cat, y = pre.transform(table)
    assert x.shape == (3, 1, 2, 2) and x_cat.shape == (3, 0)
    assert (x[:, 0, 0, 0] == 0).all()  # constant pixel: std 0 -> 1, no division by zero
    assert x[1, 0, 1, 0] == 0.0  # missing pixel imputed, and no indicator column
    assert pre.input_spec([1, 1, 1]).image_shape == [1, 2, 2] and pre.input_spec().n_numeric == 4


def test_absent_column_is_a_data_error():
    with pytest.raises(DataError, match="'shop'"):
        _fit().transform(TRAIN.drop_columns(["shop"]))


def test_features_encode_without_the_target():
    pre = _fit()
    x_num, x_cat, _ = pre.transform(TRAIN)
    new_rows = TRAIN.drop_columns(["y"])  # rows to score have no target
    features = pre.transform_features(new_rows)
    np.testing.assert_array_equal(features[0], x_num)
    np.testing.assert_array_equal(features[1], x_cat)
    with pytest.raises(DataError, match="'y'"):
        pre.transform(new_rows)
    with pytest.raises(DataError, match="'city'"):
        pre.transform_features(new_rows.drop_columns(["city"]))
