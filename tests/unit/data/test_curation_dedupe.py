"""Exact duplicate rows: the first copy kept, order kept, the rest counted."""
from __future__ import annotations

import pyarrow as pa

from factory.data.curation.dedupe import drop_duplicates, duplicate_rows


def test_later_copies_are_dropped():
    table = pa.table({"a": [1, 2, 1], "b": ["x", "y", "x"]})
    kept, n = drop_duplicates(table)
    assert n == 1 and kept.to_pydict() == {"a": [1, 2], "b": ["x", "y"]}


def test_nulls_equal_nulls_and_one_differing_column_keeps_a_row():
    assert duplicate_rows(pa.table({"a": [None, None, 1], "b": ["x", "x", "x"]})).tolist() == [1]
    assert duplicate_rows(pa.table({"a": [1, 1, 1], "b": ["x", "y", "z"]})).tolist() == []


def test_a_table_without_duplicates_is_returned_as_is():
    table = pa.table({"a": [1, 2, 3]})
    kept, n = drop_duplicates(table)
    assert kept is table and n == 0


def test_list_columns_compare_by_value():
    table = pa.table({"a": [[1, 2], [1, 2], [3]]})
    assert duplicate_rows(table).tolist() == [1]
