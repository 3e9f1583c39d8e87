"""Declared column rules checked by pandera: every failing (row, rule) at once, on three-row tables."""
from __future__ import annotations

import pyarrow as pa
import pytest

from factory.data.curation.columns import Failure, build_schema, check_rules, pii_columns, validate
from factory.errors import ConfigError, DataError


def rules_of(failures: list[Failure]) -> list[tuple[int, str]]:
    return [(f.row, f.rule) for f in failures]


def test_no_rules_no_failures():
    assert validate(pa.table({"a": [1, 2, 3]}), {}) == []


def test_range_allowed_regex_and_nulls_each_fail_their_row():
    table = pa.table({"amount": [5.0, 20000.0, None], "channel": ["chip", "online", "fax"],
                      "id": ["M0001", "X", "M0003"]})
    columns = {"amount": {"min": 0, "max": 10000, "nullable": False},
               "channel": {"allowed": ["chip", "online"]}, "id": {"regex": r"^M\d{4}$"}}
    failures = validate(table, columns)
    assert rules_of(failures) == [(1, "amount: in_range(0, 10000)"), (1, r"id: str_matches('^M\d{4}$')"),
                                  (2, "amount: not_nullable"), (2, "channel: isin(['chip', 'online'])")]
    assert failures[0].columns == ("amount",) and failures[0].values == (20000.0,)
    assert failures[2].values == (None,)


def test_nulls_pass_unless_declared_not_nullable():
    assert validate(pa.table({"a": [1.0, None, 3.0]}), {"a": {"max": 5}}) == []


def test_min_or_max_alone():
    table = pa.table({"a": [-1, 0, 7]})
    assert rules_of(validate(table, {"a": {"min": 0}})) == [(0, "a: greater_than_or_equal_to(0)")]
    assert rules_of(validate(table, {"a": {"max": 5}})) == [(2, "a: less_than_or_equal_to(5)")]


def test_unique_column_and_key_keep_the_first_occurrence():
    table = pa.table({"k": [1, 1, 2], "b": ["x", "x", "x"]})
    assert rules_of(validate(table, {"k": {"unique": True}})) == [(1, "k: unique")]
    failures = validate(table, {}, unique=["k", "b"])
    assert rules_of(failures) == [(1, "unique(k, b)")]
    assert failures[0].columns == ("k", "b") and failures[0].values == (1, "x")


def test_dtype_coerces_and_fails_only_the_unreadable_row():
    table = pa.table({"a": ["1.5", "x", "3"]})
    assert rules_of(validate(table, {"a": {"dtype": "float64"}})) == [(1, "a: coerce_dtype('float64')")]
    # a nullable integer column reads nulls as pandas' Int64 NA, not as a failing float NaN
    assert validate(pa.table({"n": pa.array([1, None, 3])}), {"n": {"dtype": "int64"}}) == []


def test_a_missing_declared_column_is_one_line():
    with pytest.raises(DataError, match=r"^data.curation.columns.zz: source 'fraud' has no column 'zz'"):
        validate(pa.table({"a": [1, 2, 3]}), {"zz": {"max": 1}}, source="fraud")
    with pytest.raises(DataError, match=r"^data.curation.unique: source 'source' has no column 'q'"):
        validate(pa.table({"a": [1, 2, 3]}), {}, unique=["a", "q"])


def test_rules_are_checked_before_pandera_sees_them():
    with pytest.raises(ConfigError, match=r"data.curation.columns.a.maximum: unknown rule"):
        check_rules({"a": {"maximum": 3}})
    with pytest.raises(ConfigError, match=r"data.curation.columns.a.pii: expected hash or drop"):
        check_rules({"a": {"pii": "mask"}})
    with pytest.raises(ConfigError, match=r"data.curation.columns.a: min 5 is above max 1"):
        check_rules({"a": {"min": 5, "max": 1}})


def test_schema_is_pandera_and_pii_tags_are_read():
    import pandera.pandas as pa_

    assert isinstance(build_schema({"a": {"max": 1}}), pa_.DataFrameSchema)
    assert pii_columns({"a": {"pii": "hash"}, "b": {"max": 1}, "c": {"pii": "drop"}}) == {"a": "hash", "c": "drop"}
