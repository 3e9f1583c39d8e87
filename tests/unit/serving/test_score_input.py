"""Batch scoring's input side on real files: which files a path, glob or directory names, how each is
read in batches, and every bad value named by file, row and column (factory.serving.score_input)."""
from __future__ import annotations

import datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.errors import DataError
from factory.serving.score_input import batches, feature_columns, find_files, fingerprint, open_files

KINDS = {"amount": "numeric", "hour": "numeric", "channel": "categorical"}
FEATURES = list(KINDS)


def table(n: int = 5, **columns) -> pa.Table:
    base = {"amount": np.arange(n) * 1.5, "hour": np.arange(n) % 24,
            "channel": ["chip", None, "online", "swipe", "chip"][:n]}
    return pa.table({**base, **columns})


def where(i: int) -> str:
    return f"f.parquet: row {i + 1}"


def test_find_files_from_a_file_glob_directory_and_list(tmp_path):
    (tmp_path / "in" / "nested").mkdir(parents=True)
    for name in ("in/a.parquet", "in/b.csv", "in/nested/c.pq", "in/_SUCCESS", "in/.hidden.parquet", "in/notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "in" / "_tmp").mkdir()
    (tmp_path / "in" / "_tmp" / "d.parquet").write_text("x")
    d = tmp_path / "in"
    assert find_files(d) == [d / "a.parquet", d / "b.csv", d / "nested" / "c.pq"]  # hidden, _-prefixed, .txt skipped
    assert find_files(str(d / "*.parquet")) == [d / "a.parquet"]
    assert find_files(str(d / "**" / "*.pq")) == [d / "nested" / "c.pq"]
    assert find_files([d / "b.csv", str(d / "*.parquet"), d / "b.csv"]) == [d / "a.parquet", d / "b.csv"]  # once each


@pytest.mark.parametrize("spec, message", [
    ("missing.parquet", r"^input=.*missing\.parquet: no such file or directory$"),
    ("*.parquet", r"^input=.*\*\.parquet: the glob matches no file$"),
    ("empty", r"^input=.*empty: the directory holds no Parquet, CSV or Arrow file$"),
    ("notes.txt", r"^input: .*notes\.txt: expected a Parquet, CSV or Arrow file"),
])
def test_find_files_refuses_in_one_line(tmp_path, spec, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=message):
        find_files(str(tmp_path / spec))


def test_open_files_names_the_file_lacking_a_feature(tmp_path):
    pq.write_table(table(), tmp_path / "a.parquet")
    pq.write_table(table().drop_columns(["hour"]), tmp_path / "b.parquet")
    with pytest.raises(DataError, match=r"^\S+/b\.parquet: lacks the feature column\(s\) the model reads: 'hour'$"):
        open_files(find_files(tmp_path), FEATURES, KINDS)


def test_fingerprint_follows_size_and_mtime(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(table(), path)
    first = open_files([path], FEATURES, KINDS)
    assert first[0].rows == 5 and first[0].bytes == path.stat().st_size
    assert fingerprint(first) == fingerprint(open_files([path], FEATURES, KINDS))
    pq.write_table(table(4), path)
    assert fingerprint(open_files([path], FEATURES, KINDS)) != fingerprint(first)


def test_batches_stream_a_file_in_order(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(table(5), path, row_group_size=2)
    (f,) = open_files([path], FEATURES, KINDS)
    got = list(batches(f, KINDS, batch_rows=2))
    assert [b.num_rows for b in got] == [2, 2, 1]
    assert pa.Table.from_batches(got).equals(pq.read_table(path))


def test_csv_reads_numeric_features_as_float64_and_names_a_bad_cell(tmp_path):
    path = tmp_path / "a.csv"
    lines = ["amount,hour,channel"] + [f"{i},{i % 24},chip" for i in range(300)]
    lines[1 + 250] = "3.5,,online"  # a float after integers, a missing hour: both fine
    path.write_text("\n".join(lines) + "\n")
    (f,) = open_files([path], FEATURES, KINDS)
    assert f.rows is None  # CSV: not known before reading
    read = pa.Table.from_batches(list(batches(f, KINDS, batch_rows=64)))
    assert read.schema.field("amount").type == pa.float64() and read.column("hour").null_count == 1
    lines[1 + 277] = "12,abc,chip"
    path.write_text("\n".join(lines) + "\n")
    (f,) = open_files([path], FEATURES, KINDS)
    with pytest.raises(DataError, match=rf"^{path}: row 278: column 'hour' holds 'abc', not a number$"):
        list(batches(f, KINDS, batch_rows=64))


def test_feature_columns_as_the_onnx_graph_takes_them():
    batch = table(5, hour=pa.array(["1", "", None, "2.5", "nan"])).to_batches()[0]
    columns = feature_columns(batch, FEATURES, KINDS, where)
    assert columns["amount"].dtype == np.float64
    np.testing.assert_array_equal(columns["hour"], [1.0, np.nan, np.nan, 2.5, np.nan])  # "" and null: missing
    assert columns["channel"].tolist() == ["chip", "", "online", "swipe", "chip"]
    coded = table(2, channel=pa.array(["chip", "online"]).dictionary_encode()).to_batches()[0]
    assert feature_columns(coded, FEATURES, KINDS, where)["channel"].tolist() == ["chip", "online"]


@pytest.mark.parametrize("column, message", [
    (pa.array([1.0, 2.0, np.inf, 4.0, 5.0]), "f.parquet: row 3: column 'amount' is inf; the model reads finite"),
    (pa.array([1.0, -np.inf, 2.0, 4.0, 5.0]), "f.parquet: row 2: column 'amount' is -inf;"),
    (pa.array(["1", "2", "3", "4x", "5"]), "f.parquet: row 4: column 'amount' holds '4x', not a number"),
    (pa.array(["1", "2", "3", "4", "inf"]), "f.parquet: row 5: column 'amount' is inf;"),
    (pa.array([datetime.date(2026, 1, 1)] * 5), "f.parquet: row 1: column 'amount' is date32[day]; the model"),
])
def test_feature_columns_name_row_and_column_of_a_bad_value(column, message):
    batch = table(5, amount=column).to_batches()[0]
    with pytest.raises(DataError) as info:
        feature_columns(batch, FEATURES, KINDS, where)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_a_file_that_is_not_its_format_is_one_line(tmp_path):
    (tmp_path / "a.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"^\S+/a\.parquet: not a readable parquet file \(.*\)$"):
        open_files([tmp_path / "a.parquet"], FEATURES, KINDS)
    path = tmp_path / "b.csv"
    path.write_text("amount,hour,channel\n" + "1,2,chip\n" * 100 + "1,2,chip,extra\n")
    with pytest.raises(DataError, match=rf"^{path}: not a readable csv file \(CSV parse error: Row #102: Expected 3 "
                                        r"columns, got 4: 1,2,chip,extra\)$"):
        open_files([path], FEATURES, KINDS)


def test_arrow_files_and_streams_and_gzipped_csv(tmp_path):
    import gzip

    import pyarrow.feather as feather
    from pyarrow import csv

    rows = table(5)
    feather.write_feather(rows, tmp_path / "a.feather", chunksize=2)
    with pa.ipc.new_stream(tmp_path / "b.arrows", rows.schema) as writer:
        writer.write_table(rows)
    csv.write_csv(rows, tmp_path / "c.csv")
    (tmp_path / "c.csv.gz").write_bytes(gzip.compress((tmp_path / "c.csv").read_bytes()))
    (tmp_path / "c.csv").unlink()
    files = open_files(find_files(tmp_path), FEATURES, KINDS)
    assert [(f.path.name, f.format) for f in files] == [("a.feather", "ipc"), ("b.arrows", "ipc"), ("c.csv.gz", "csv")]
    for f in files:
        read = pa.Table.from_batches(list(batches(f, KINDS, batch_rows=3)))
        assert read.column("channel").to_pylist() == rows.column("channel").to_pylist(), f.path.name
        assert read.column("amount").to_pylist() == rows.column("amount").to_pylist(), f.path.name


def test_parquet_row_groups_smaller_and_larger_than_a_batch(tmp_path):
    rows = table(5).take([i % 5 for i in range(1000)])
    for row_group_size, batch_rows in [(7, 100), (300, 128), (1000, 1000)]:
        path = tmp_path / f"rg{row_group_size}.parquet"
        pq.write_table(rows, path, row_group_size=row_group_size)
        (f,) = open_files([path], FEATURES, KINDS)
        read = list(batches(f, KINDS, batch_rows))
        assert all(b.num_rows <= batch_rows for b in read) and pa.Table.from_batches(read).equals(rows)
        assert len(read) <= 2 * -(-1000 // batch_rows)  # tiny row groups are read together, not one batch each
