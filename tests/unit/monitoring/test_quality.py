"""Quality when labels arrive: the labels file, its join to a real request log, figures and windows."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.errors import DataError
from factory.monitoring.quality import (compare_to_validation, join_counts, join_labels, load_labels,
                                        quality_by_window, quality_figures)
from factory.rundir import manifest
from factory.serving.request_log import RequestLog, read_request_log

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


def _strict(figures):
    return json.loads(json.dumps(figures, allow_nan=False))


# -- figures ---------------------------------------------------------------------------------
def test_binary_figures_on_three_rows_by_hand():
    # labels 1, 0, 1; scores 0.9, 0.4, 0.3; at 0.5 the predictions are 1, 0, 0
    q = quality_figures([1, 0, 1], [0.9, 0.4, 0.3], ["1", "0", "0"], task="binary")
    assert q["positive_label"] == "1" and q["rows"] == 3 and q["positives"] == 2
    assert q["auroc"] == pytest.approx(0.5)                   # pairs: (0.9 > 0.4) yes, (0.3 > 0.4) no
    assert q["pr_auc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)  # AP: recall steps of 1/2 at precision 1, 2/3
    assert q["brier"] == pytest.approx((0.01 + 0.16 + 0.49) / 3)
    assert q["ece"] == pytest.approx((0.1 + 0.4 + 0.7) / 3)  # one row per bin: |observed - predicted|
    bins = {b["low"]: b for b in q["calibration"] if b["count"]}
    assert len(q["calibration"]) == 10 and sorted(bins) == [0.3, 0.4, 0.9]
    assert bins[0.3] == {"low": 0.3, "high": 0.4, "mean_predicted": 0.3, "observed_rate": 1.0, "count": 1}
    assert q["confusion"] == {"tp": 1, "fp": 0, "tn": 1, "fn": 1, "precision": 1.0, "recall": 0.5}
    assert q["accuracy"] == pytest.approx(2 / 3) and q["f1"] == pytest.approx(2 / 3)
    assert q["undefined"] == {} and _strict(q) == q


def test_the_confusion_matrix_is_at_the_served_threshold():
    q = quality_figures([1, 0, 1], [0.9, 0.4, 0.3], ["1", "1", "1"], task="binary", positive_label=1, threshold=0.25)
    assert q["confusion"] == {"tp": 2, "fp": 1, "tn": 0, "fn": 0, "precision": pytest.approx(2 / 3), "recall": 1.0}


def test_the_confusion_matrix_counts_the_logged_prediction_not_the_threshold():
    # The server decided at another threshold (0.3) than monitor.quality.threshold (0.5): its predictions count.
    y, score = [1, 0, 1, 0], [0.9, 0.4, 0.35, 0.1]
    q = quality_figures(y, score, ["1", "1", "1", "0"], task="binary", positive_label=1, threshold=0.5)
    assert q["decision"] == "prediction"
    assert q["confusion"] == {"tp": 2, "fp": 1, "tn": 1, "fn": 0, "precision": pytest.approx(2 / 3), "recall": 1.0}
    assert q["accuracy"] == pytest.approx(3 / 4) and q["f1"] == pytest.approx(0.8)
    # No prediction logged: the threshold decides; some missing: the threshold for those rows only.
    q = quality_figures(y, score, [None] * 4, task="binary", positive_label=1, threshold=0.5)
    assert q["decision"] == "threshold" and q["confusion"]["tp"] == 1 and q["confusion"]["fn"] == 1
    q = quality_figures(y, score, ["1", None, "1", None], task="binary", positive_label=1, threshold=0.5)
    assert q["decision"] == "prediction (threshold where missing)"
    assert (q["confusion"]["tp"], q["confusion"]["fp"], q["confusion"]["tn"]) == (2, 0, 2)


def test_one_class_in_a_window_gives_none_with_a_reason():
    q = quality_figures(["legit"] * 4, [0.1, 0.2, 0.3, 0.6], ["legit", "legit", "legit", "fraud"], task="binary")
    assert q["positive_label"] == "fraud"  # what the log predicts at score >= 0.5
    assert q["auroc"] is None and "one class only" in q["undefined"]["auroc"]
    assert q["pr_auc"] is None and q["confusion"]["recall"] is None and "recall" in q["undefined"]
    assert q["brier"] == pytest.approx((0.01 + 0.04 + 0.09 + 0.36) / 4)
    assert _strict(q) == q


def test_no_labelled_rows_is_not_an_error():
    q = quality_figures(pa.array([None, None], pa.string()), [0.2, 0.7], ["0", "1"], task="binary")
    assert q["rows"] == 0 and q["auroc"] is None and q["undefined"]["auroc"] == "no labelled rows"


def test_the_positive_class_must_be_named_when_it_cannot_be_told():
    with pytest.raises(DataError, match=r"cannot tell the positive class among labels \['cat', 'dog'\]: name it"):
        quality_figures(["cat", "dog"], [0.1, 0.2], ["cat", "cat"], task="binary")
    assert quality_figures(["cat", "dog"], [0.1, 0.2], ["cat", "cat"], task="binary",
                           positive_label="dog")["auroc"] == 1.0


def test_multiclass_accuracy_macro_f1_and_log_loss():
    y, pred = ["a", "b", "c", "a"], ["a", "b", "b", "b"]
    probs = {"a": [0.8, 0.1, 0.1, 0.4], "b": [0.1, 0.8, 0.5, 0.5], "c": [0.1, 0.1, 0.4, 0.1]}
    q = quality_figures(y, [0.8, 0.8, 0.5, 0.5], pred, task="multiclass", probabilities=probs)
    assert q["accuracy"] == 0.5
    # F1: a (p 1, r 1/2) 2/3; b (p 1/3, r 1) 1/2; c 0
    assert q["f1_macro"] == pytest.approx((2 / 3 + 0.5 + 0) / 3)
    assert q["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.8, 0.4, 0.4])))


def test_regression_figures_and_unknown_task():
    q = quality_figures([1.0, 2.0, 3.0], [1.5, 2.0, 2.5], [1.5, 2.0, 2.5], task="regression")
    assert q["mae"] == pytest.approx(1 / 3) and q["mse"] == pytest.approx(0.5 / 3) and q["r2"] == pytest.approx(0.75)
    with pytest.raises(DataError, match="unknown task 'ranking'"):
        quality_figures([1], [1], [1], task="ranking")


# -- the labels file -------------------------------------------------------------------------
def test_load_labels_csv_keeps_ids_as_text_and_defaults_the_row(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("request_id,label,region\n0042,1,north\n7,0,south\n0042,1,north\n8,,south\n")
    labels = load_labels(path, columns=["region"])
    assert labels.to_pylist() == [{"request_id": "0042", "row": 0, "label": 1, "region": "north"},
                                  {"request_id": "7", "row": 0, "label": 0, "region": "south"}]  # once; null left out


def test_load_labels_names_a_conflict_and_missing_columns(tmp_path):
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "b", "c"], "row": [0, 1, 1, 0], "y": ["x", "x", "z", "x"]}), path)
    with pytest.raises(DataError, match=r"labels\.parquet: request_id 'b' row 1 has conflicting labels \['x', 'z'\]"):
        load_labels(path, id_column="id", label_column="y")
    with pytest.raises(DataError, match=r"labels\.parquet: no column\(s\) \['request_id', 'label'\]") as error:
        load_labels(path)
    assert "\n" not in str(error.value)
    with pytest.raises(DataError, match="not found"):
        load_labels(tmp_path / "none.csv")
    (tmp_path / "labels.txt").write_text("x")
    with pytest.raises(DataError, match="unknown kind '.txt'"):
        load_labels(tmp_path / "labels.txt")


# -- the join on a real request log ----------------------------------------------------------
@pytest.fixture(scope="module")
def request_log(tmp_path_factory):
    """60 requests of 1-3 rows, one an hour from T0, versions 1 then 2, written by the server's RequestLog."""
    directory = tmp_path_factory.mktemp("serving") / "fraud" / "requests"
    log = RequestLog(directory, flush_rows=16, flush_interval_s=0.05)
    rng = np.random.default_rng(0)
    for i in range(60):
        n = 1 + i % 3
        score = rng.random(n)
        log.append(request_id=f"req-{i:03d}", model="fraud", version=1 if i < 30 else 2,
                   features={"amount": rng.normal(size=n), "region": np.array(["north", "south", "east"][:n])},
                   prediction=np.where(score >= 0.5, "1", "0"), score=score, when=T0 + timedelta(hours=i))
    log.close()
    return directory


def _batches(directory, size=7):
    """The log as a stream of small record batches (as window.iter_batches hands them over)."""
    yield from read_request_log(directory).to_batches(max_chunksize=size)


def test_late_labels_join_the_logged_rows_and_unknown_ids_are_counted(request_log, tmp_path):
    log = read_request_log(request_log)
    labelled = log.filter(pa.compute.equal(pa.compute.bit_wise_and(pa.compute.cast(
        pa.compute.utf8_slice_codeunits(log["request_id"], 4), pa.int64()), 1), 0))  # even requests only
    path = tmp_path / "labels.csv"
    lines = ["request_id,row,label,segment"]
    lines += [f"{r['request_id']},{r['row']},{int(r['score'] > 0.3)},s{r['row']}" for r in labelled.to_pylist()]
    lines += ["req-999,0,1,s0", "req-000,5,0,s0"]  # an unknown id; a row request 0 never had
    path.write_text("\n".join(lines) + "\n")
    labels = load_labels(path, columns=["segment"])

    table = join_labels(_batches(request_log), labels, columns=["region", "segment"])
    assert table.column_names == ["time", "version", "score", "prediction", "label", "request_id", "row",
                                  "region", "segment"]
    assert table.num_rows == labelled.num_rows == 60  # 30 even requests: 20 of each of 1, 2, 3 rows
    assert join_counts(table) == {"labels": 62, "matched": 60, "unmatched": 2, "log_rows": log.num_rows}
    assert table["label"].type == pa.string()  # the log's prediction type
    assert set(table["label"].to_pylist()) == {"0", "1"}
    first = table.slice(0, 1).to_pylist()[0]
    assert first["request_id"] == "req-000" and first["region"] == "north" and first["segment"] == "s0"
    assert first["label"] == str(int(first["score"] > 0.3))
    assert table["time"].to_pylist() == sorted(table["time"].to_pylist())

    q = quality_figures(table["label"], table["score"], table["prediction"], task="binary")
    assert q["auroc"] == 1.0 and q["confusion"]["fp"] == 0  # label = score > 0.3: perfectly ranked


def test_join_with_no_labelled_rows_and_a_missing_column(request_log):
    labels = pa.table({"request_id": ["nope"], "row": pa.array([0], pa.int64()), "label": ["1"]})
    table = join_labels(_batches(request_log), labels)
    assert table.num_rows == 0 and join_counts(table)["unmatched"] == 1
    assert quality_by_window(table, "1h") == []
    nothing = join_labels([], labels)  # no log at all: the columns, no rows
    assert nothing.num_rows == 0 and nothing.column_names[:5] == ["time", "version", "score", "prediction", "label"]
    assert quality_figures(nothing["label"], nothing["score"], nothing["prediction"],
                           task="binary")["undefined"]["auroc"] == "no labelled rows"
    with pytest.raises(DataError, match=r"column\(s\) \['gender'\] in neither the request log nor the labels"):
        join_labels(_batches(request_log), labels, columns=["gender"])


def test_quality_by_window(request_log):
    log = read_request_log(request_log)
    labels = pa.table({"request_id": log["request_id"], "row": log["row"],
                       "label": pa.compute.cast(pa.compute.greater(log["score"], 0.5), pa.int64())})
    table = join_labels(_batches(request_log, 64), labels)
    days = quality_by_window(table, "1d")
    assert [d["start"] for d in days] == ["2026-12-01T00:00:00+00:00", "2026-12-02T00:00:00+00:00",
                                          "2026-12-03T00:00:00+00:00"]
    assert days[0]["end"] == "2026-12-02T00:00:00+00:00"
    assert [d["rows"] for d in days] == [48, 48, 24]  # 24, 24 and 12 requests of 1, 2, 3 rows
    assert [d["versions"] for d in days] == [[1], [1, 2], [2]]  # version 2 from hour 30
    assert all(d["confusion"]["fp"] == 0 and d["confusion"]["fn"] == 0 for d in days)  # label = score > 0.5
    hours = quality_by_window(table, "6h")
    assert len(hours) == 10 and sum(h["rows"] for h in hours) == table.num_rows
    assert _strict(hours) == hours
    with pytest.raises(DataError, match="every='daily' is not a window length"):
        quality_by_window(table, "daily")


def test_one_window_with_one_class_does_not_stop_the_others(request_log):
    log = read_request_log(request_log)
    late = pa.compute.greater_equal(log["time"], pa.scalar(T0 + timedelta(hours=24), pa.timestamp("us", "UTC")))
    label = pa.compute.if_else(late, pa.compute.greater(log["score"], 0.5), False)  # day 1: no positives at all
    table = join_labels(_batches(request_log), pa.table({"request_id": log["request_id"], "row": log["row"],
                                                         "label": label}))
    days = quality_by_window(table, "1d")
    assert days[0]["auroc"] is None and "one class only" in days[0]["undefined"]["auroc"]
    assert days[0]["positive_label"] == days[1]["positive_label"] == "1"  # settled once, over every window
    assert days[1]["auroc"] == 1.0


# -- against validation ----------------------------------------------------------------------
def test_compare_to_validation_reads_metrics_json(tmp_path):
    manifest.save_metrics(tmp_path, {"val": {"val/auroc": 0.9, "val/pr_auc": 0.5, "val/loss": 0.3},
                                     "test": {"test/auroc": 0.8}})
    q = quality_figures([1, 0, 1], [0.9, 0.4, 0.3], ["1", "0", "0"], task="binary")
    for source in (tmp_path, tmp_path / "metrics.json", {"val/auroc": 0.9, "val/pr_auc": 0.5}):
        compared = compare_to_validation(q, source)
        assert set(compared) == {"auroc", "pr_auc"}
        assert compared["auroc"] == {"metric": "val/auroc", "validation": 0.9, "current": 0.5,
                                     "change": pytest.approx(-0.4)}
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "meta.json").write_text(json.dumps({"metrics": {"val/accuracy": 0.7}}))
    assert compare_to_validation(q, tmp_path / "v1")["accuracy"]["change"] == pytest.approx(2 / 3 - 0.7)
    with pytest.raises(DataError, match="no metrics.json or meta.json"):
        compare_to_validation(q, tmp_path / "nowhere")
