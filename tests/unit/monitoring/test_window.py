"""Windows of traffic: the window syntax, and batches streamed from a real request log and from files."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.errors import DataError
from factory.monitoring.window import iter_batches, parse_window
from factory.serving.request_log import RequestLog
from factory.serving.request_log_files import PARTS

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def test_parse_window():
    assert parse_window("all") == (None, None)
    assert parse_window("last_24h", now=NOW) == (NOW - DAY, NOW)
    assert parse_window("last_7d", now=NOW) == (NOW - 7 * DAY, NOW)
    assert parse_window("last_30m", now=NOW)[0] == NOW - timedelta(minutes=30)
    assert parse_window("2026-12-01..2026-12-02") == (datetime(2026, 12, 1, tzinfo=timezone.utc),
                                                      datetime(2026, 12, 3, tzinfo=timezone.utc))  # B's whole day
    assert parse_window("2026-12-01T06:00..") == (datetime(2026, 12, 1, 6, tzinfo=timezone.utc), None)
    assert parse_window("..2026-12-01T06:00+01:00")[1] == datetime(2026, 12, 1, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize("text", ["yesterday", "last_0h", "last_3y", "2026-13-01..", "2026-12-02..2026-12-01"])
def test_a_bad_window_names_the_value(text):
    with pytest.raises(DataError, match=f"window={text!r}"):
        parse_window(text)


def _log(directory, days: list[int], close: bool = True):
    """A request log with one 2-row request per day of December 2026 at noon (one flush each)."""
    log = RequestLog(directory, flush_rows=2, flush_interval_s=0.05)
    for day in days:
        log.append(request_id=f"r{day}", model="m", version=1,
                   features={"amount": np.array([float(day), day + 0.5]), "channel": np.array(["a", "b"])},
                   prediction=np.array([0, 1]), score=np.array([0.1, 0.9]),
                   when=datetime(2026, 12, day, 12, tzinfo=timezone.utc))
        if not close:
            import time

            deadline = time.monotonic() + 10
            while log.written_rows < 2 * (days.index(day) + 1) and time.monotonic() < deadline:
                time.sleep(0.02)
    if close:
        log.close()
    return log


def _rows(batches) -> pa.Table:
    return pa.Table.from_batches(list(batches))


def test_a_time_window_on_a_closed_request_log(tmp_path):
    _log(tmp_path, [1, 2, 3, 4])
    assert not list((tmp_path / PARTS).glob("*.parquet"))  # compacted: closed periods only
    assert _rows(iter_batches(tmp_path)).num_rows == 8
    start, end = parse_window("2026-12-02..2026-12-03")
    table = _rows(iter_batches(tmp_path, start=start, end=end, columns=["amount", "time", "absent"]))
    assert sorted(table.column("amount").to_pylist()) == [2.0, 2.5, 3.0, 3.5]
    assert table.column_names == ["amount", "time"]  # a column no file has is left out


def test_parts_of_an_open_period_are_read_and_a_compacted_copy_is_not(tmp_path):
    log = _log(tmp_path, [1, 2, 3], close=False)
    try:
        parts = sorted((tmp_path / PARTS).glob("*.parquet"))
        assert parts and not list(tmp_path.glob("*.parquet"))
        assert _rows(iter_batches(tmp_path)).num_rows == 6
        # A crash between a period's rename and its parts' deletion leaves both: count the rows once.
        stem = parts[0].stem.rsplit("-part", 1)[0]
        pq.write_table(pa.concat_tables([pq.read_table(p) for p in parts]), tmp_path / f"{stem}.parquet")
        assert _rows(iter_batches(tmp_path)).num_rows == 6
    finally:
        log.close()


def test_batches_are_bounded_and_stream_the_same_rows(tmp_path):
    n = 1000
    table = pa.table({"amount": np.arange(n, dtype=float), "channel": ["a"] * n})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=100)
    batches = list(iter_batches(tmp_path / "a.parquet", batch_rows=64))
    assert max(b.num_rows for b in batches) <= 64
    assert _rows(batches).column("amount").to_pylist() == table.column("amount").to_pylist()


def test_csv_files_globs_and_directories(tmp_path):
    (tmp_path / "x.csv").write_text("time,amount\n2026-12-01T00:00:00Z,1\n2026-12-05T00:00:00Z,2\n")
    pq.write_table(pa.table({"amount": [3.0]}), tmp_path / "y.parquet")
    assert _rows(iter_batches(tmp_path / "x.csv")).num_rows == 2
    assert sum(b.num_rows for b in iter_batches(str(tmp_path / "*.csv"))) == 2
    assert sum(b.num_rows for b in iter_batches(tmp_path)) == 3
    start, end = parse_window("2026-12-04..")
    assert _rows(iter_batches(tmp_path / "x.csv", start=start, end=end)).column("amount").to_pylist() == [2]


def test_errors_are_one_line(tmp_path):
    with pytest.raises(DataError, match="no Parquet or CSV files"):
        list(iter_batches(tmp_path))
    with pytest.raises(DataError, match="no such file"):
        list(iter_batches(tmp_path / "nothing.parquet"))
    pq.write_table(pa.table({"amount": [3.0]}), tmp_path / "y.parquet")
    with pytest.raises(DataError, match="needs a 'time' column"):
        list(iter_batches(tmp_path, start=NOW))


def test_small_files_and_row_groups_are_joined_into_full_batches_of_one_schema(tmp_path):
    for i in range(5):  # 5 files x 300 rows in 100-row row groups; prob_b only in the later files
        columns = {"amount": np.arange(300 * i, 300 * (i + 1), dtype=float), "prob_a": np.full(300, 0.5)}
        if i >= 2:
            columns["prob_b"] = np.full(300, 0.25)
        pq.write_table(pa.table(columns), tmp_path / f"f{i}.parquet", row_group_size=100)
    batches = list(iter_batches(tmp_path, batch_rows=256))  # the files' 300 rows read as 256 + 44
    assert [b.num_rows for b in batches] == [256, 44] * 5  # batches of half batch_rows or more: as read
    batches = list(iter_batches(tmp_path, batch_rows=1024))  # 300-row batches: joined, cut at 1,024
    assert [b.num_rows for b in batches] == [1024, 1500 - 1024]
    assert {b.schema.names == ["amount", "prob_a", "prob_b"] for b in batches} == {True}
    table = _rows(batches)
    assert table.column("amount").to_pylist() == list(np.arange(1500, dtype=float))
    assert table.column("prob_b").null_count == 600  # the files without it
    assert _rows(iter_batches(tmp_path, columns=["prob_b"], batch_rows=1000)).column_names == ["prob_b"]


def _spoil_row_group(path, group: int) -> None:
    """Overwrite the column data of one row group with junk, leaving the footer (and statistics) whole."""
    meta = pq.ParquetFile(path).metadata.row_group(group)
    with open(path, "r+b") as f:
        for c in range(meta.num_columns):
            column = meta.column(c)
            begin = min(o for o in (column.dictionary_page_offset, column.data_page_offset) if o)
            f.seek(begin)
            f.write(b"\xff" * column.total_compressed_size)


def test_row_groups_and_files_outside_the_window_are_not_read(tmp_path):
    day = np.datetime64("2026-12-01T00:00:00", "us")
    for name, first in (("early", 0), ("late", 10)):  # two files: days 0-3 and 10-13, a row group per day
        times = np.repeat(day + np.arange(first, first + 4).astype("timedelta64[D]"), 50)
        pq.write_table(pa.table({"time": pa.array(times, pa.timestamp("us", tz="UTC")),
                                 "amount": np.arange(200, dtype=float)}), tmp_path / f"{name}.parquet",
                       row_group_size=50, write_statistics=["time"])
    for group in range(4):
        _spoil_row_group(tmp_path / "early.parquet", group)  # the whole file unreadable
    _spoil_row_group(tmp_path / "late.parquet", 0)  # 2026-12-11
    start, end = parse_window("2026-12-12..2026-12-13")
    table = _rows(iter_batches(tmp_path, start=start, end=end, columns=["amount"]))
    assert table.column("amount").to_pylist() == list(np.arange(50, 150, dtype=float))
    with pytest.raises(Exception):  # without the window the spoiled row groups are read, and fail
        list(iter_batches(tmp_path))


def test_a_part_compacted_away_while_streaming_is_read_from_its_period_once(tmp_path):
    log = _log(tmp_path, [1, 2, 3], close=False)
    closed = False
    try:
        stream = iter_batches(tmp_path, batch_rows=2)
        first = next(stream)  # the first part, read; then the period is compacted and its parts deleted
        log.close()
        closed = True
        assert not list((tmp_path / PARTS).glob("*.parquet"))
        amounts = first.column(first.schema.get_field_index("amount")).to_pylist()
        amounts += [a for b in stream for a in b.column(b.schema.get_field_index("amount")).to_pylist()]
        assert sorted(amounts) == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    finally:
        if not closed:
            log.close()


def test_a_window_with_an_offset_on_naive_times_is_converted_to_utc(tmp_path):
    """A CSV's times have no zone: read as UTC, so 08:00+02:00..09:00+02:00 is 06:00..07:00 UTC."""
    path = tmp_path / "scored.csv"
    path.write_text("time,x\n2026-12-01 05:30:00,1\n2026-12-01 06:30:00,2\n2026-12-01 07:30:00,3\n")
    start, end = parse_window("2026-12-01T08:00+02:00..2026-12-01T09:00+02:00")
    assert _rows(iter_batches(path, start=start, end=end)).column("x").to_pylist() == [2]
    table = pa.table({"time": pa.array([datetime(2026, 12, 1, h, 30) for h in (5, 6, 7)], pa.timestamp("us")),
                      "x": [1, 2, 3]})
    pq.write_table(table, tmp_path / "naive.parquet", row_group_size=1)  # row-group statistics, naive too
    assert _rows(iter_batches(tmp_path / "naive.parquet", start=start, end=end)).column("x").to_pylist() == [2]
