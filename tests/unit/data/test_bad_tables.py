"""The checks that turn bad tables into one-line DataErrors (issue 9), on three-row tables."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.data.preprocessing import Preprocessor
from factory.data.sources import FileSource, LoadedTable
from factory.data.sources.declared import declare_schema
from factory.data.sources.file_schema import check_text, unify
from factory.data.spec import TableSchema
from factory.data.split import check_split_sizes
from factory.data.validation import validate_table
from factory.errors import DataError


def _validate(table: pa.Table, target: str = "y", **declared) -> None:
    validate_table(LoadedTable(table, declare_schema(table, target, **declared)), source="t")


def test_only_the_target_is_no_table_to_train_on():
    with pytest.raises(DataError, match="^t.csv has no feature columns, only the target 'y'"):
        declare_schema(pa.table({"y": [0, 1, 0]}), "y", origin="t.csv")
    with pytest.raises(DataError, match="data.source.features is empty"):
        declare_schema(pa.table({"x": [1, 2, 3], "y": [0, 1, 0]}), "y", features=[])
    schema = TableSchema(features={}, target="y", task="binary")  # a source that declares none
    with pytest.raises(DataError, match="source 't' has no feature columns"):
        validate_table(LoadedTable(pa.table({"y": [0, 1, 0]}), schema), source="t")


def test_duplicate_column_names():
    table = pa.Table.from_arrays([pa.array([1, 2, 3]), pa.array([4, 5, 6]), pa.array([0, 1, 0])],
                                 names=["x", "x", "y"])
    with pytest.raises(DataError, match="^column 'x' appears 2 times in d.csv; rename"):
        declare_schema(table, "y", origin="d.csv")


def test_text_that_is_mostly_numbers_is_a_numeric_column_with_stray_words():
    table = pa.table({"x": ["1.5", "2.5", "12 EUR", "4"], "code": ["7", "8", "9", "7"], "y": [0, 1, 0, 1]})
    schema = declare_schema(table, "y")
    assert schema.features == {"x": "numeric", "code": "categorical"}  # all-number text is text by choice
    with pytest.raises(DataError, match=r"^numeric feature 'x' has 1 non-numeric value\(s\): '12 EUR' \(row 2\);"):
        _validate(table)
    words = pa.table({"x": ["a", "b", "3"], "y": [0, 1, 0]})
    assert declare_schema(words, "y").features == {"x": "categorical"}


def test_text_errors_count_every_bad_cell():
    table = pa.table({"x": ["1", "?", "two", "?"], "y": [0, 1, 0, 1]})
    with pytest.raises(DataError, match=r"has 3 non-numeric value\(s\): '\?' \(row 1\), 'two' \(row 2\), "
                                        r"'\?' \(row 3\); clean them, or name 'x' in data.source.categorical"):
        _validate(table, categorical=[])


@pytest.mark.parametrize("column, shown", [
    (pa.array([1.0, np.inf, 3.0]), "the first inf at row 1"),
    (pa.array(["1", "2", "-inf"]), "the first -inf at row 2"),  # numbers read as text
])
def test_infinite_feature_values(column, shown):
    with pytest.raises(DataError, match=f"^numeric feature 'x' has 1 infinite value\\(s\\), {shown}"):
        _validate(pa.table({"x": column, "y": [0, 1, 0]}), categorical=[])


def test_nan_features_are_missing_but_a_nan_target_is_refused():
    _validate(pa.table({"x": [1.0, np.nan, 3.0], "y": [0, 1, 0]}))  # imputed, as nulls are
    table = pa.table({"x": [1.0, 2.0, 3.0], "y": [0.5, np.nan, np.inf]})
    with pytest.raises(DataError, match=r"^target 'y' has 2 non-finite \(NaN or infinite\) value\(s\), "
                                        "the first nan at row 1"):
        _validate(table, task="regression")


def test_the_preprocessing_refuses_infinities_in_tables_it_encodes():
    schema = TableSchema(features={"x": "numeric"}, target="y", task="regression")
    pre = Preprocessor.fit(pa.table({"x": [1.0, 2.0, 3.0], "y": [0.5, 1.0, 2.0]}), schema)
    with pytest.raises(DataError, match="numeric feature 'x' has 1 infinite value"):
        pre.transform_features(pa.table({"x": [1.0, 2.0, -np.inf]}))
    with pytest.raises(DataError, match="target 'y' has 1 non-finite"):
        pre.transform(pa.table({"x": [1.0, 2.0, 3.0], "y": [1.0, np.inf, 0.0]}))


def test_unify_promotes_widening_types_and_reports_the_rest():
    a = pa.schema([("x", pa.int64()), ("y", pa.int64()), ("e", pa.null())])
    b = pa.schema([("y", pa.int64()), ("x", pa.float64()), ("e", pa.string())])
    assert unify({"a.csv": a, "b.csv": b}, "d/*.csv", inferred=True) == pa.schema(
        [("x", pa.float64()), ("y", pa.int64()), ("e", pa.string())])
    text = pa.schema([("x", pa.string()), ("y", pa.int64()), ("e", pa.null())])
    assert unify({"a.csv": a, "c.csv": text}, "d/*.csv", inferred=True).field("x").type == pa.string()
    with pytest.raises(DataError, match="^column 'x' has different types in the files matching d: "
                                        "int64 in a.parquet, string in c.parquet$"):
        unify({"a.parquet": a, "c.parquet": text}, "d", inferred=False)
    with pytest.raises(DataError, match="^files matching d hold different columns: 'e' missing from b.csv;"):
        unify({"a.csv": a, "b.csv": pa.schema([("x", pa.int64()), ("y", pa.int64())])}, "d", inferred=True)


def test_bytes_in_a_csv_column_name_the_encoding():
    table = pa.table({"city": pa.array([b"M\xfcnchen", None, b"K\xf6ln"], pa.binary()), "y": [0, 1, 0]})
    with pytest.raises(DataError, match=r"^c.csv is not valid utf-8 text \(column 'city' holds bytes such as "
                                        r"b'M\\xfcnchen'\); set data.source.encoding"):
        check_text(table, "c.csv", "utf-8")


def test_file_source_reads_the_declared_encoding(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes("city,x,y\nMünchen,1,0\nKöln,2,1\nBonn,3,0\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid utf-8 text"):
        FileSource(path=str(path), target="y").load()
    loaded = FileSource(path=str(path), target="y", encoding="latin-1").load()
    assert loaded.table["city"].to_pylist() == ["München", "Köln", "Bonn"]
    with pytest.raises(DataError, match="^unknown data.source.encoding 'latin-99'"):
        FileSource(path=str(path), target="y", encoding="latin-99")
    with pytest.raises(DataError, match="cannot read .*c.csv as csv: 'ascii' codec can't decode"):
        FileSource(path=str(path), target="y", encoding="ascii").load()


def test_a_parquet_directory_is_typed_from_every_file(tmp_path):
    (tmp_path / "k=1").mkdir()
    (tmp_path / "k=2").mkdir()
    pq.write_table(pa.table({"x": [1, 2, 3], "y": [0, 1, 0]}), tmp_path / "k=1" / "a.parquet")
    pq.write_table(pa.table({"x": [0.5, 1.5, 2.5], "y": [1, 0, 1]}), tmp_path / "k=2" / "b.parquet")
    loaded = FileSource(path=str(tmp_path), target="y").load()  # int64 first, double second: double
    assert loaded.table["x"].type == pa.float64() and loaded.table["x"].to_pylist()[3:] == [0.5, 1.5, 2.5]
    assert sorted(set(loaded.table["k"].to_pylist())) == [1, 2]
    pq.write_table(pa.table({"x": ["a", "b", "c"], "y": [1, 0, 1]}), tmp_path / "k=2" / "c.parquet")
    with pytest.raises(DataError, match=r"column 'x' has different types .*: int64 in k=1/a.parquet, "
                                        r"double in k=2/b.parquet, string in k=2/c.parquet"):
        FileSource(path=str(tmp_path), target="y").load()


@pytest.mark.parametrize("sizes, need_val, match", [
    ({"train": 3, "val": 0, "test": 0}, True, r"its 3 row\(s\) give train 3, val 0, test 0 rows .*no val and no test"),
    ({"train": 3, "val": 1, "test": 0}, True, "no test rows"),
    ({"train": 3, "val": 0, "test": 1}, False, None),  # evaluating reads the test split only
])
def test_split_sizes(sizes, need_val, match):
    if match is None:
        check_split_sizes(sizes, 0.2, 0.2, need_val=need_val)
        return
    with pytest.raises(DataError, match=match):
        check_split_sizes(sizes, 0.2, 0.2, need_val=need_val)
    with pytest.raises(DataError, match="^data.val_fraction=0 leaves no validation rows"):
        check_split_sizes({"train": 3, "val": 0, "test": 1}, 0.0, 0.2)
