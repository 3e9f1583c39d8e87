"""BatchEncoder (the streamed path's encoding) against Preprocessor.transform: equal bit for bit."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from factory.data.batch_encoder import BatchEncoder
from factory.data.preprocessing import Preprocessor
from factory.data.spec import TableSchema
from factory.errors import DataError

SCHEMA = TableSchema(
    features={"amount": "numeric", "count": "numeric", "age": "numeric", "flag": "numeric", "text_num": "numeric",
              "city": "categorical", "shop": "categorical", "merchant": "categorical", "size": "categorical",
              "vip": "categorical"},
    target="y", task="binary",
)


def _table(n: int, seed: int, merchants: int) -> pa.Table:
    """NaNs and nulls in numerics, nulls and "" in categoricals, bools, and a high-cardinality column."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3, 2, n) * rng.choice([-1.0, 1.0], n)
    amount[rng.random(n) < 0.1] = np.nan  # NaN values, not only nulls
    return pa.table({
        "amount": pa.array(amount, mask=rng.random(n) < 0.05),
        "count": pa.array(rng.integers(-5, 10**9, n), mask=rng.random(n) < 0.1),
        "age": rng.integers(-(2**53), 2**53, n),  # integers without nulls: read without Arrow's cast
        "flag": rng.random(n) < 0.4,  # a bool numeric
        "text_num": pa.array([f"{v:.3f}" for v in rng.normal(0, 1, n)]),  # numbers stored as text
        "city": pa.array(rng.choice(["a", "b", "", "c"], n), mask=rng.random(n) < 0.1),
        "shop": pa.array(rng.choice(["s1", "s2", "s3"], n)).dictionary_encode(),
        "merchant": pa.array([f"m{v}" for v in rng.integers(0, merchants, n)], mask=rng.random(n) < 0.02),
        "size": pa.array(rng.integers(0, 5, n)),  # an integer categorical
        "vip": pa.array(rng.random(n) < 0.2, mask=rng.random(n) < 0.1),  # a bool categorical with nulls
        "y": (rng.random(n) < 0.3).astype(np.int64),
    })


def _same(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> None:
    for left, right in zip(a, b, strict=True):
        assert left.dtype == right.dtype and left.shape == right.shape
        assert left.tobytes() == right.tobytes()  # bit for bit (NaN-free: imputed)


def _encoded(table: pa.Table) -> pa.Table:
    index = table.schema.get_field_index("merchant")
    return table.set_column(index, "merchant", table.column("merchant").combine_chunks().dictionary_encode())


@pytest.fixture(scope="module")
def pre() -> Preprocessor:
    return Preprocessor.fit(_table(3000, 0, 300), SCHEMA, max_onehot=4)


def test_encoder_equals_transform_bit_for_bit(pre):
    assert pre.input_spec().embed_cardinalities  # merchant is embedded, city/shop/vip one-hot
    fresh = _table(2000, 1, 600)  # unseen merchants and levels, other NaNs
    _same(BatchEncoder(pre).encode(fresh), pre.transform(fresh))
    order = np.random.default_rng(2).permutation(fresh.num_rows)
    _same(BatchEncoder(pre).encode(fresh, order), tuple(a[order] for a in pre.transform(fresh)))


def test_dictionary_text_and_chunked_columns_encode_the_same(pre):
    fresh = _table(1500, 3, 600)
    dictionary = fresh.set_column(fresh.schema.get_field_index("merchant"), "merchant",
                                  fresh.column("merchant").dictionary_encode())
    # two chunks, each with its own dictionary (as two record batches of a Parquet file carry)
    chunked = pa.concat_tables([_encoded(fresh.slice(0, 700)), _encoded(fresh.slice(700))])
    expected = pre.transform(fresh)
    encoder = BatchEncoder(pre)  # one encoder over batches: dictionaries seen before are looked up again
    for table in (dictionary, chunked, dictionary, chunked):
        _same(encoder.encode(table), expected)


def test_missing_categorical_values_and_empty_tables(pre):
    nulls = _table(50, 4, 10)
    for name in ("city", "merchant"):
        nulls = nulls.set_column(nulls.schema.get_field_index(name), name, pa.nulls(50, pa.string()))
    _same(BatchEncoder(pre).encode(nulls), pre.transform(nulls))
    empty = _table(10, 5, 10).slice(0, 0)
    _same(BatchEncoder(pre).encode(empty), pre.transform(empty))


def test_bad_values_fail_as_transform_does(pre):
    bad = _table(20, 6, 10)
    bad = bad.set_column(0, "amount", pa.array([1.0] * 5 + [np.inf] + [1.0] * 14))
    with pytest.raises(DataError, match="numeric feature 'amount' has 1 infinite value.*at row 5"):
        BatchEncoder(pre).encode(bad, np.arange(20)[::-1].copy())
    with pytest.raises(DataError, match="lacks column"):
        BatchEncoder(pre).encode(bad.drop_columns(["city"]))
    huge = _table(20, 8, 10)  # beyond 2**53 float64 is inexact: Arrow's cast refuses, and so does the encoder
    huge = huge.set_column(huge.schema.get_field_index("age"), "age", pa.array([2**53 + 1] * 20))
    with pytest.raises(pa.ArrowInvalid, match="not in range"):
        pre.transform(huge)
    with pytest.raises(pa.ArrowInvalid, match="not in range"):
        BatchEncoder(pre).encode(huge)
    two = _table(20, 7, 10)
    two = two.set_column(two.schema.get_field_index("y"), "y", pa.array([0, 1] * 9 + [2, 0]))
    with pytest.raises(DataError, match="binary target 'y' must be 0/1"):
        BatchEncoder(pre).encode(two)
