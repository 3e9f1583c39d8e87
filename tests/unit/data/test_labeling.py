"""factory.data.labeling on three-row tables: which rows each strategy picks, the Label Studio task
JSON and labeling config, and every problem a Label Studio export can have, each named."""
from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pyarrow as pa
import pytest

from factory.data import labeling
from factory.errors import DataError

CLASSES = ["0", "1"]
ROWS = pa.table({"amount": [10.0, float("nan"), 30.5], "merchant": ["a", "b", None], "n": [1, 2, 3]})


@pytest.fixture
def ids() -> list[str]:
    return labeling.row_ids(ROWS)


# --- selection ------------------------------------------------------------------

def test_entropy_peaks_at_the_boundary_binary_and_multiclass():
    binary = labeling.entropy(np.array([0.5, 0.9, 0.01]))
    assert binary[0] == pytest.approx(math.log(2)) and binary[0] > binary[1] > binary[2] > 0
    multi = labeling.entropy(np.array([[1 / 3] * 3, [0.8, 0.1, 0.1], [1.0, 0.0, 0.0]]))
    assert multi[0] == pytest.approx(math.log(3)) and multi[1] > multi[2] == pytest.approx(0, abs=1e-9)


def test_uncertainty_picks_the_rows_nearest_the_boundary_in_that_order():
    p = np.array([0.9, 0.48, 0.05, 0.6])
    assert labeling.select(labeling.entropy(p), 2, "uncertainty").tolist() == [1, 3]
    assert labeling.select(labeling.entropy(p), 10, "uncertainty").tolist() == [1, 3, 0, 2]  # n > rows: all


def test_random_is_seeded_and_ignores_uncertainty():
    u = labeling.entropy(np.array([0.5, 0.5, 0.5, 0.01, 0.02, 0.03]))
    first = labeling.select(u, 3, "random", seed=1)
    assert first.tolist() == labeling.select(u, 3, "random", seed=1).tolist()
    assert len(set(first.tolist())) == 3
    picks = {tuple(labeling.select(u, 3, "random", seed=s).tolist()) for s in range(20)}
    assert any(set(p) - {0, 1, 2} for p in picks)  # not just the uncertain three


def test_diverse_spreads_over_the_uncertain_rows():
    # rows 0 and 1 are equally uncertain and nearly identical; row 2 is a bit less sure but far away
    u = labeling.entropy(np.array([0.5, 0.5, 0.6]))
    x = labeling.standardized(pa.table({"a": [0.0, 0.01, 5.0]}), ["a"])
    assert labeling.select(u, 2, "uncertainty").tolist() == [0, 1]
    assert labeling.select(u, 2, "diverse", features=x).tolist() == [0, 2]


def test_diverse_chooses_only_among_pool_times_n_uncertain_rows():
    u = labeling.entropy(np.array([0.5, 0.45, 0.01]))  # row 2: sure, far away
    x = labeling.standardized(pa.table({"a": [0.0, 0.1, 9.0]}), ["a"])
    assert labeling.select(u, 1, "diverse", features=x, pool=2).tolist() == [0]
    assert labeling.select(u, 2, "diverse", features=x, pool=1).tolist() == [0, 1]  # candidates: 2 rows


def test_standardized_handles_missing_and_constant_columns():
    x = labeling.standardized(pa.table({"a": [1.0, None, 3.0], "c": [2.0, 2.0, 2.0]}), ["a", "c"])
    assert x.tolist() == [[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]


def test_unknown_strategy_and_diverse_without_features_are_named():
    with pytest.raises(DataError, match="strategy 'smart': expected one of uncertainty, random, diverse"):
        labeling.select(np.zeros(3), 1, "smart")
    with pytest.raises(DataError, match="'diverse' needs the rows' numeric features"):
        labeling.select(np.zeros(3), 1, "diverse")


# --- tasks and config -------------------------------------------------------------------

def test_row_ids_are_stable_by_content_not_position(ids):
    assert len(set(ids)) == 3 and all(len(i) == 16 for i in ids)
    reordered = ROWS.take([2, 0, 1])
    assert labeling.row_ids(reordered) == [ids[2], ids[0], ids[1]]
    assert labeling.row_ids(pa.concat_tables([ROWS, ROWS]))[3:] == ids  # a duplicate row: the same id


def test_tasks_hold_row_id_values_and_the_models_pre_annotation(ids):
    tasks = labeling.tasks(ROWS, ids, CLASSES, predicted=["1", "0", "1"], scores=[0.55, 0.9, 0.7],
                           model_version="fraud@3")
    json.loads(json.dumps(tasks, allow_nan=False))  # strict JSON
    assert tasks[1] == {
        "data": {"row_id": ids[1], "row": {"amount": None, "merchant": "b", "n": 2}},
        "predictions": [{"model_version": "fraud@3", "score": 0.9, "result": [
            {"from_name": "label", "to_name": "row", "type": "choices", "value": {"choices": ["0"]}}]}]}
    assert "predictions" not in labeling.tasks(ROWS, ids, CLASSES)[0]


def test_a_prediction_outside_the_classes_is_refused(ids):
    with pytest.raises(DataError, match="predicted class '2' is not one of 0, 1"):
        labeling.tasks(ROWS, ids, CLASSES, predicted=["2", "0", "1"], scores=[1, 1, 1])


def test_labeling_config_is_a_single_choice_over_the_row_table():
    root = ET.fromstring(labeling.labeling_config(["cat", "dog", 'a "quoted" & <odd>']))
    assert root.tag == "View"
    table = root.find("Table")
    assert table.attrib == {"name": "row", "value": "$row"}
    choices = root.find("Choices")
    assert choices.attrib["name"] == "label" and choices.attrib["toName"] == "row"
    assert choices.attrib["choice"] == "single-radio" and choices.attrib["required"] == "true"
    assert [c.attrib["value"] for c in choices.findall("Choice")] == ["cat", "dog", 'a "quoted" & <odd>']
    with pytest.raises(DataError, match="two classes or more"):
        labeling.labeling_config(["only"])


# --- parsing an export ---------------------------------------------------------------

def _task(task_id, row_id, *labels, cancelled=(), data=True) -> dict:
    annotations = [{"id": task_id * 10 + i, "was_cancelled": i in cancelled, "completed_by": i + 1,
                    "result": [labeling.choice(label)] if label is not None else []}
                   for i, label in enumerate(labels)]
    task = {"id": task_id, "annotations": annotations,
            "predictions": [{"result": [labeling.choice("1")], "score": 0.5}]}
    if data:
        task["data"] = {"row_id": row_id, "row": {}}
    return task


def test_parse_export_returns_one_row_per_labeled_row(ids):
    export = [_task(1, ids[0], "1"), _task(2, ids[1], "0", "0"), _task(3, ids[2], "1", "0", cancelled={1})]
    table = labeling.parse_export(export, CLASSES, ids)
    assert table.to_pylist() == [{"row_id": ids[0], "label": "1", "task_id": 1, "annotations": 1},
                                 {"row_id": ids[1], "label": "0", "task_id": 2, "annotations": 2},
                                 {"row_id": ids[2], "label": "1", "task_id": 3, "annotations": 1}]


def test_predictions_are_never_labels_and_skip_leaves_unlabeled_out(ids):
    export = [_task(1, ids[0], "0"), _task(2, ids[1]), _task(3, ids[2], None)]  # 2: none, 3: empty result
    with pytest.raises(DataError, match="2 problem"):
        labeling.parse_export(export, CLASSES, ids)
    assert labeling.parse_export(export, CLASSES, ids, unlabeled="skip").column("row_id").to_pylist() == [ids[0]]


@pytest.mark.parametrize("task, message", [
    (lambda ids: {"data": {"row_id": ids[0]}, "annotations": []}, "task #1: no integer id"),
    (lambda ids: _task(7, ids[0], "1", data=False), "task 7: no data.row_id (not a task label.py export wrote)"),
    (lambda ids: _task(7, "feedfacecafebeef", "1"), "task 7: unknown row_id 'feedfacecafebeef'"),
    (lambda ids: _task(7, ids[0]), f"task 7 (row_id {{0}}): no label (no annotation, or only cancelled ones)"),
    (lambda ids: _task(7, ids[0], "1", cancelled={0}), "task 7 (row_id {0}): no label"),
    (lambda ids: _task(7, ids[0], "1", "0", "1"),
     "task 7 (row_id {0}): conflicting labels from its annotators: '0' x1, '1' x2"),
    (lambda ids: _task(7, ids[0], "maybe"), "task 7 (row_id {0}): annotation 70: label 'maybe' is not a class (0, 1)"),
], ids=["no-task-id", "no-row-id", "unknown-row-id", "missing-label", "only-cancelled", "conflict", "not-a-class"])
def test_each_problem_is_named_in_one_line(ids, task, message):
    with pytest.raises(DataError) as info:
        labeling.parse_export([task(ids)], CLASSES, ids, where="export.json")
    text = str(info.value)
    assert len(text.splitlines()) == 1
    assert text.startswith("export.json: 1 problem(s): ") and message.format(ids[0]) in text


def test_two_choices_in_one_annotation_are_named(ids):
    task = _task(4, ids[0], "1")
    task["annotations"][0]["result"][0]["value"]["choices"] = ["0", "1"]
    with pytest.raises(DataError, match=r"task 4 \(row_id \w+\): annotation 40: 2 choices \('0', '1'\), expected one"):
        labeling.parse_export([task], CLASSES, ids)


def test_the_same_row_labeled_differently_in_two_tasks_is_a_conflict(ids):
    with pytest.raises(DataError, match=f"task 9 \\(row_id {ids[0]}\\): label '0' conflicts with task 8's '1'"):
        labeling.parse_export([_task(8, ids[0], "1"), _task(9, ids[0], "0")], CLASSES, ids)
    agreed = labeling.parse_export([_task(8, ids[0], "1"), _task(9, ids[0], "1")], CLASSES, ids)
    assert agreed.to_pylist() == [{"row_id": ids[0], "label": "1", "task_id": 8, "annotations": 2}]


def test_every_problem_in_one_line_at_most_five_shown(ids):
    export = [_task(i, f"unknown{i:09d}", "1") for i in range(1, 8)]
    with pytest.raises(DataError) as info:
        labeling.parse_export(export, CLASSES, ids)
    assert len(str(info.value).splitlines()) == 1
    assert "7 problem(s)" in str(info.value) and str(info.value).endswith("; ... and 2 more")


def test_not_a_task_list_is_named():
    with pytest.raises(DataError, match="x.json: expected a Label Studio JSON export \\(a list of tasks\\), got dict"):
        labeling.parse_export({"tasks": []}, CLASSES, [], where="x.json")


def test_labeled_rows_carry_the_label_as_the_target_value(ids):
    rows = ROWS.append_column("row_id", pa.array(ids))
    labels = labeling.parse_export([_task(1, ids[2], "yes"), _task(2, ids[0], "no")], ["no", "yes"], ids)
    table = labeling.labeled_rows(rows, labels, "is_fraud", ["no", "yes"], [0, 1], pa.int64())
    assert table.column_names == ["amount", "merchant", "n", "is_fraud"]
    assert table.to_pylist() == [{"amount": 30.5, "merchant": None, "n": 3, "is_fraud": 1},
                                 {"amount": 10.0, "merchant": "a", "n": 1, "is_fraud": 0}]
    assert table.schema.field("is_fraud").type == pa.int64()
