"""The request log's writer under a backlog: files of ``flush_rows`` rows, rows in order, columns built per request."""
from __future__ import annotations

import time

import numpy as np
import pyarrow.parquet as pq

from factory.serving.request_log import PARTS, RequestLog, read_request_log
from factory.serving.request_log_files import rows_table


def _entry(i: int, rows: int) -> dict:
    return {"request_id": f"r{i}", "model": "m", "version": 2, "time": 1_000_000 * i,
            "features": {"x": np.arange(rows, dtype=np.int64) + 10 * i,
                         "c": np.array(["a", None, ""] * rows, object)[:rows]},
            "prediction": np.array(["yes"] * rows, object), "score": np.full(rows, 0.25 * (i % 4)), "probabilities": {}}


def test_rows_table_repeats_each_requests_fields_over_its_rows():
    table = rows_table([_entry(0, 3), _entry(1, 1), _entry(2, 2)]).to_pydict()
    assert table["request_id"] == ["r0"] * 3 + ["r1"] + ["r2"] * 2
    assert table["row"] == [0, 1, 2, 0, 0, 1]
    assert [t.timestamp() for t in table["time"]] == [0.0] * 3 + [1.0] + [2.0] * 2
    assert table["version"] == [2] * 6 and table["model"] == ["m"] * 6
    assert table["x"] == [0.0, 1.0, 2.0, 10.0, 20.0, 21.0]  # numbers as float64
    assert table["c"] == ["a", None, "", "a", "a", None] and table["score"] == [0.0] * 3 + [0.25] + [0.5] * 2


def test_a_backlog_is_written_in_files_of_flush_rows_and_the_rest_at_close(tmp_path):
    log = RequestLog(tmp_path, flush_rows=10, flush_interval_s=60)
    for i in range(95):  # faster than the writer wakes: it finds a backlog
        log.append(request_id=f"q{i}", model="m", version=1, features={"x": np.array([float(i)])},
                   prediction=np.array([0]), score=np.array([0.5]))
    deadline = time.monotonic() + 10
    while log.written_rows < 90 and time.monotonic() < deadline:
        time.sleep(0.02)
    parts = sorted((tmp_path / PARTS).glob("*.parquet"))
    assert log.written_rows == 90 and [pq.read_metadata(p).num_rows for p in parts] == [10] * 9
    log.close()  # the 5 left, then one compacted file
    table = read_request_log(tmp_path)
    assert table.column("x").to_pylist() == [float(i) for i in range(95)]
    assert table.column("request_id").to_pylist() == [f"q{i}" for i in range(95)]


def test_files_keep_statistics_for_time_and_request_id(tmp_path):
    log = RequestLog(tmp_path, flush_rows=4, flush_interval_s=60)
    log.append(request_id="a", model="m", version=1, features={"x": np.arange(4.0)}, prediction=np.zeros(4),
               score=np.zeros(4))
    log.close()
    (path,) = tmp_path.glob("*.parquet")
    group = pq.read_metadata(path).row_group(0)
    stats = {group.column(i).path_in_schema: group.column(i).statistics for i in range(group.num_columns)}
    assert stats["request_id"].min == "a" and stats["time"].has_min_max
