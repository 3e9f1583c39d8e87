"""data.source.filter: the condition list, its one-line errors, and the in-memory FileSource applying it."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.config import compose
from factory.data.sources import FileSource
from factory.data.sources.filters import filter_columns, filter_expression
from factory.errors import DataError

TABLE = pa.table({"amount": [1.0, 20.0, 30.0, 5.0], "shop": ["a", "b", "a", "b"], "y": [0, 1, 0, 1]})


def test_conditions_are_anded_and_lists_of_them_ored():
    assert TABLE.filter(filter_expression([["amount", ">=", 10], ["shop", "=", "a"]], TABLE.column_names)) \
        .column("amount").to_pylist() == [30.0]
    either = [[["amount", "<", 2]], [["shop", "in", ["b"]], ["amount", ">", 10]]]
    assert TABLE.filter(filter_expression(either, TABLE.column_names)).column("amount").to_pylist() == [1.0, 20.0]
    assert filter_expression(None, TABLE.column_names) is None and filter_expression([], TABLE.column_names) is None
    assert filter_columns(either) == ["amount", "shop"]


@pytest.mark.parametrize("spec,message", [
    ([["amt", ">", 1]], "condition ['amt', '>', 1]: unknown column 'amt'; columns: amount, shop, y"),
    ([["amount", "~", 1]], "unknown op '~'; expected one of =, ==, !=, <, <=, >, >=, in, not in"),
    ([["shop", "in", "a"]], "'in' needs a list of values"),
    ([["amount", ">", [1, 2]]], "'>' compares with one value, not a list"),
    ([["amount", ">"]], "expected [column, op, value]"),
])
def test_a_bad_condition_is_one_line_naming_it(spec, message):
    with pytest.raises(DataError) as info:
        filter_expression(spec, TABLE.column_names)
    assert message in str(info.value) and str(info.value).startswith("data.source.filter condition ")
    assert len(str(info.value).splitlines()) == 1


def test_the_in_memory_source_keeps_the_matching_rows(tmp_path):
    pq.write_table(TABLE, tmp_path / "t.parquet")
    loaded = FileSource(str(tmp_path / "t.parquet"), target="y", filter=[["amount", ">=", 10]]).load()
    assert loaded.table.column("amount").to_pylist() == [20.0, 30.0]


def test_the_command_line_form_composes():
    cfg = compose("train", ["data=files_stream", "data.source.path=x/", "data.source.target=y",
                            'data.source.filter=[[amount,">=",10],[shop,in,[a,b]]]'])
    assert cfg.data.source.filter == [["amount", ">=", 10], ["shop", "in", ["a", "b"]]]
