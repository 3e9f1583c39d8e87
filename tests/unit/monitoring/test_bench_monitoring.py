"""bench/monitoring.py's pieces that can be wrong quietly: the shares and the power table's threshold,
the targets on a known result, and the request log it writes (the server's format, read back by the readers)."""
from __future__ import annotations

import importlib.util
import sys

import pytest

from factory.config import CONFIG_DIR

BENCH = CONFIG_DIR.parent / "bench"


def _load(name: str):
    if str(BENCH) not in sys.path:  # the bench's modules import each other as scripts do
        sys.path.append(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _load("monitoring_report")
FEATURES = ["amount", "hour", "channel"]


def test_shares_count_features_not_the_score():
    flagged = [set(), {"amount"}, {"amount", "score"}, {"amount", "hour"}]
    assert report.cell_share(flagged, FEATURES) == 4 / 12
    assert report.any_share(flagged, FEATURES) == 3 / 4
    assert report.only_share(flagged, {"amount"}, FEATURES) == 2 / 4  # the score is no feature
    assert report.only_share(flagged, set(), FEATURES) == 1 / 4
    assert report.share(flagged, "score") == 1 / 4
    assert report.by_name(flagged) == {"amount": 3, "hour": 1, "score": 1}


@pytest.mark.parametrize(("shares", "expected"), [
    ([0.0, 0.4, 0.96, 1.0], 0.1),
    ([0.0, 0.95, 0.9, 1.0], 0.2),  # a dip above it: the smallest k from which every larger k is detected
    ([0.0, 0.2, 0.5, 0.94], None),
    ([1.0, 1.0, 1.0, 1.0], 0.0),
])
def test_smallest_detected(shares, expected):
    assert report.smallest_detected([0.0, 0.05, 0.1, 0.2], shares) == expected


def test_targets_pass_and_fail_on_the_figures():
    saved = {"false_alarms": {"rows": [{"reference_rows": 50_000, "window_rows": 1_000, "windows": 100, "cells": 1000,
                                        "flagged_cells": 60, "cell_share": 0.06, "any_share": 0.3, "score_share": 0.0,
                                        "by_name": {"hour": 60}}]},
             "planted": {"rows": [{"scenario": "fraud rate", "window_rows": 1_000, "windows": 100, "expected": [],
                                   "only_share": 0.9, "score_share": 0.0, "others": {}}]},
             "power": {"grid": [0.0, 0.5], "windows": 100, "shares": {"1000": [0.0, 0.97]}, "smallest": {"1000": 0.5}},
             "speed": {"rows": 10, "ratio": 0.6, "monitor_rows_s": 6.0, "raw_rows_s": 10.0, "repeats": 3},
             "memory": {"runs": [{"rows": 1, "mode": "monitor", "returncode": 0, "peak_rss_mb": 100.0},
                                 {"rows": 10, "mode": "monitor", "returncode": 0, "peak_rss_mb": 130.0},
                                 {"rows": 10, "mode": "raw", "returncode": 0, "peak_rss_mb": 500.0}]}}
    results = [t["result"] for t in report.targets(saved)]
    assert results == ["FAIL", "info (FAIL)", "info (PASS)", "PASS", "FAIL"]  # 6% alarms; 1.3x RSS (raw ignored)


def test_request_log_is_the_servers_format(tmp_path):
    from factory.monitoring.window import iter_batches
    from factory.serving.request_log_files import read_request_log

    data = _load("monitoring_data")
    directory = data.request_log(5_000, tmp_path)
    table = read_request_log(directory)
    assert table.num_rows == 5_000
    assert table.column_names[:5] == ["request_id", "row", "time", "model", "version"]
    assert {"score", "prediction", *data.kinds()} <= set(table.column_names)
    assert str(table.schema.field("time").type) == "timestamp[us, tz=UTC]"
    import pyarrow.parquet as pq

    first = pq.ParquetFile(next(directory.glob("*.parquet")))
    assert first.metadata.row_group(0).num_rows == data.FLUSH_ROWS  # row groups are the server's flushes
    assert sum(b.num_rows for b in iter_batches(directory)) == 5_000
    assert data.request_log(5_000, tmp_path) == directory  # made once
