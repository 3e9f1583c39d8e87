"""validate_table: every rejection is a one-line DataError naming what to fix."""
from __future__ import annotations

import datetime

import pyarrow as pa
import pytest

from factory.data.sources.base import LoadedTable
from factory.data.spec import TableSchema
from factory.data.validation import validate_table
from factory.errors import DataError

BINARY = TableSchema(features={"amount": "numeric", "city": "categorical"}, target="y", task="binary")


def _table(**overrides) -> pa.Table:
    columns = {"amount": [1.0, None, 3.0, 4.0], "city": ["a", None, "b", "a"], "y": [0, 1, 0, 1]}
    return pa.table({**columns, **overrides})


def _error(table: pa.Table, schema: TableSchema = BINARY) -> str:
    with pytest.raises(DataError) as info:
        validate_table(LoadedTable(table, schema), source="tiny")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_valid_table_with_null_features_passes():
    validate_table(LoadedTable(_table(), BINARY), source="tiny")


def test_empty_table_names_the_source():
    message = _error(_table().slice(0, 0))
    assert "'tiny'" in message and "empty" in message


def test_missing_columns_are_named():
    message = _error(_table().drop_columns(["city", "y"]))
    assert "'city'" in message and "'y'" in message and "'amount'" in message  # listed as available


def test_single_class_target_names_target_and_class():
    message = _error(_table(y=[1, 1, 1, 1]))
    assert "'y'" in message and "single class" in message and "1" in message


def test_non_numeric_text_in_numeric_column_shows_the_value():
    message = _error(_table(amount=["12.5", "n/a", None, "3"]))
    assert "'amount'" in message and "'n/a'" in message and "row 1" in message


def test_numeric_text_that_parses_passes():
    validate_table(LoadedTable(_table(amount=["12.5", "7", None, "3"]), BINARY))


def test_numeric_column_of_another_type_is_rejected():
    dates = [datetime.date(2024, 1, d) for d in range(1, 5)]
    assert "'amount'" in _error(_table(amount=dates))


def test_string_binary_target_needs_positive_label():
    message = _error(_table(y=["Yes", "No", "No", "Yes"]))
    assert "'y'" in message and "positive_label" in message


def test_binary_labels_other_than_0_1_need_positive_label():
    assert "positive_label" in _error(_table(y=[1, 2, 2, 1]))


def test_positive_label_must_occur_in_the_target():
    schema = TableSchema(BINARY.features, "y", "binary", positive_label="Maybe")
    message = _error(_table(y=["Yes", "No", "No", "Yes"]), schema)
    assert "'Maybe'" in message and "'y'" in message


def test_positive_label_given_as_text_matches_integer_target():
    schema = TableSchema(BINARY.features, "y", "binary", positive_label="2")
    validate_table(LoadedTable(_table(y=[1, 2, 2, 1]), schema))


def test_null_target_reports_the_count():
    message = _error(_table(y=[0, None, 1, None]))
    assert "'y'" in message and "2 missing" in message


def test_regression_target_must_be_numeric():
    schema = TableSchema({"amount": "numeric"}, "y", "regression")
    assert "regression target 'y'" in _error(_table(y=["a", "b", "c", "d"]), schema)


def test_image_shape_must_match_numeric_features():
    schema = TableSchema({"amount": "numeric"}, "y", "binary", image_shape=(1, 2, 2))
    assert "image_shape" in _error(_table(), schema)
