"""Humans in the loop: pick rows for labeling, write them as Label Studio tasks, read the labels back.

Plain functions on Arrow tables and NumPy arrays; the model's part (scoring the pool) is the
caller's (``factory.serving.labeling``, ``scripts/label.py``), so this module imports no registry.

    pool ──model──> class probabilities ──select──> rows ──tasks──> tasks.json + config.xml ──> Label Studio
    Label Studio JSON export ──parse_export──> (row_id, label) ──labeled_rows──> rows + target ──> snapshot

A task's ``data`` holds a stable ``row_id`` (``row_ids``: a hash of the row's feature values, so the
same row gets the same id in any pool, file or order) and the row's feature values under ``row``
(shown by the config's ``<Table>``); its ``predictions`` hold the model's choice as a pre-annotation.

Example:
    >>> p = np.array([0.5, 0.9, 0.05])                       # P(class 1) of three rows
    >>> select(entropy(p), 1, "uncertainty").tolist()
    [0]
    >>> tasks(rows, ids, ["0", "1"], predicted=["1"], scores=[0.5], model_version="fraud@3")
"""
from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import math
import warnings
from typing import Any, Iterable, Sequence
from xml.sax.saxutils import quoteattr

import numpy as np
import pyarrow as pa

from factory.errors import DataError

STRATEGIES = ("uncertainty", "random", "diverse")
#: The task data keys: the stable row id, and the feature values (one object, shown as a table).
ROW_ID, ROW = "row_id", "row"
#: The labeling config's control and object names; an annotation's result names them.
CONTROL, OBJECT = "label", "row"
#: Problems named in one error line before "... and N more".
SHOWN = 5


# --- selection ---------------------------------------------------------------

def entropy(probabilities: np.ndarray) -> np.ndarray:
    """Each row's predictive entropy (nats): 0 when the model is sure, highest at the decision boundary.

    Args:
        probabilities: ``(N,)`` P(class 1) of a binary model, or ``(N, C)`` class probabilities.

    Returns:
        ``(N,)`` float64. For binary scores it orders rows as ``-|p - 0.5|`` does.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)
    p = np.clip(p, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def standardized(table: pa.Table, columns: Sequence[str]) -> np.ndarray:
    """``(N, len(columns))`` float64: each numeric column minus its mean over its SD; missing -> 0 (the mean).

    What ``diverse`` measures distances on: standardizing keeps a column in cents from
    outweighing one in years. A constant column becomes zeros.
    """
    if not columns:
        return np.zeros((table.num_rows, 0))
    x = np.column_stack([table.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in columns])
    x[~np.isfinite(x)] = np.nan
    with warnings.catch_warnings():  # an all-missing column warns; its NaN mean becomes 0 below
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, sd = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
    mean, sd = np.nan_to_num(mean), np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
    return np.nan_to_num((x - mean) / sd)


def select(uncertainty: np.ndarray, n: int, strategy: str, *, features: np.ndarray | None = None,
           seed: int = 42, pool: int = 5) -> np.ndarray:
    """Which rows to label: ``n`` row indices (all rows when there are fewer), in labeling order.

    Args:
        uncertainty: ``(N,)`` per row, higher = less sure (``entropy``).
        n: how many rows to pick.
        strategy: ``uncertainty``: the ``n`` most uncertain rows (ties: the earlier row first);
            ``random``: ``n`` rows uniformly at random (``seed``), the baseline every active-learning
            claim is measured against; ``diverse``: among the ``pool * n`` most uncertain rows, a
            farthest-point walk on ``features``: start at the most uncertain row, then add the row
            farthest (Euclidean) from every row picked so far. Near-duplicate uncertain rows (one
            cluster at the boundary) then cost one label, not ``n``.
        features: ``(N, d)`` standardized numerics (``standardized``); required by ``diverse``.
        seed: for ``random``.
        pool: for ``diverse``: how many times ``n`` uncertain rows the walk chooses among.

    Raises:
        DataError: an unknown strategy, or ``diverse`` without ``features``.
    """
    u = np.asarray(uncertainty, dtype=np.float64)
    n = min(int(n), len(u))
    if strategy == "random":
        return np.random.default_rng(seed).permutation(len(u))[:n]
    if strategy not in STRATEGIES:
        raise DataError(f"strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    order = np.argsort(-u, kind="stable")  # most uncertain first; stable: ties keep row order
    if strategy == "uncertainty" or n == 0:
        return order[:n]
    if features is None:
        raise DataError("strategy 'diverse' needs the rows' numeric features (none given)")
    candidates = order[:max(n, pool * n)]
    x = np.asarray(features, dtype=np.float64)[candidates]
    picked = [0]
    nearest = np.linalg.norm(x - x[0], axis=1)  # each candidate's distance to its nearest pick
    nearest[0] = -1.0
    for _ in range(n - 1):
        i = int(np.argmax(nearest))  # ties (no numerics: all 0) go to the earlier, more uncertain row
        picked.append(i)
        nearest = np.minimum(nearest, np.linalg.norm(x - x[i], axis=1))
        nearest[picked] = -1.0
    return candidates[picked]


# --- Label Studio tasks ----------------------------------------------------------

def row_ids(table: pa.Table, columns: Sequence[str] | None = None) -> list[str]:
    """A stable id per row: the first 16 hex of the SHA-256 of its values (``columns``, in that order).

    The same row has the same id whichever file, pool or position it comes from, so an export
    read back months later still finds its rows; two identical rows share one id (one label).
    """
    columns = list(columns if columns is not None else table.column_names)
    rows = table.select(columns).to_pylist()
    return [hashlib.sha256(json.dumps([_json_value(r[c]) for c in columns], default=str).encode()).hexdigest()[:16]
            for r in rows]


def tasks(rows: pa.Table, ids: Sequence[str], classes: Sequence[str], *, predicted: Sequence[str] | None = None,
          scores: Sequence[float] | None = None, model_version: str | None = None) -> list[dict]:
    """Label Studio tasks, one per row: ``data`` (``row_id`` and the ``row``'s values) and, with
    ``predicted``, the model's pre-annotation (``predictions``: ``model_version``, ``score``, ``result``).

    Args:
        rows: the rows to label (only the columns an annotator should see: the model's features).
        ids: ``row_ids(rows)``.
        classes: the class names, as the labeling config's choices spell them.
        predicted: the model's class per row (one of ``classes``); None: no pre-annotations.
        scores: the model's confidence in ``predicted`` per row (Label Studio sorts and filters by it).
        model_version: the registered model's ref (``fraud_detection@3``).

    Returns:
        The task list, strict-JSON-able (NaN and infinities become null, times ISO strings).
    """
    values = rows.to_pylist()
    out = []
    for i, (row, row_id) in enumerate(zip(values, ids)):
        task: dict[str, Any] = {"data": {ROW_ID: row_id, ROW: {k: _json_value(v) for k, v in row.items()}}}
        if predicted is not None:
            label = str(predicted[i])
            if label not in classes:
                raise DataError(f"row {row_id}: predicted class {label!r} is not one of {', '.join(classes)}")
            task["predictions"] = [{"model_version": model_version or "", "score": _json_value(
                float(scores[i])) if scores is not None else None, "result": [choice(label)]}]
        out.append(task)
    return out


def choice(label: str) -> dict:
    """One result in Label Studio's ``choices`` format, as an annotation or prediction holds it."""
    return {"from_name": CONTROL, "to_name": OBJECT, "type": "choices", "value": {"choices": [str(label)]}}


def labeling_config(classes: Sequence[str], title: str = "Which class is this row?") -> str:
    """Label Studio's labeling config (XML): the row's values as a table, one required single choice."""
    if len(classes) < 2:
        raise DataError(f"a labeling task needs two classes or more, got {list(classes)}")
    choices = "\n".join(f"    <Choice value={quoteattr(str(c))}/>" for c in classes)
    return (f"<View>\n  <Header value={quoteattr(title)}/>\n  <Table name=\"{OBJECT}\" value=\"${ROW}\"/>\n"
            f"  <Choices name=\"{CONTROL}\" toName=\"{OBJECT}\" choice=\"single-radio\" required=\"true\">\n"
            f"{choices}\n  </Choices>\n</View>\n")


# --- Label Studio export ----------------------------------------------------------

def parse_export(export: Any, classes: Sequence[str], known: Iterable[str], *, where: str = "export",
                 unlabeled: str = "error") -> pa.Table:
    """The labels of a Label Studio JSON export, checked: one row per labeled ``row_id``.

    Each task's label is the single choice of its annotations that were not cancelled; several
    annotators who agree give one label. Predictions are never labels.

    Args:
        export: the parsed JSON (Label Studio's "JSON" export: a list of tasks).
        classes: the allowed labels (the config's choices).
        known: the row ids that were exported for labeling.
        where: the file, for messages.
        unlabeled: ``error``: a task without a label is a problem; ``skip``: it is left out.

    Returns:
        Columns ``row_id`` (string), ``label`` (string, one of ``classes``), ``task_id`` (int64,
        Label Studio's id), ``annotations`` (int64, how many agreed).

    Raises:
        DataError: one line naming every problem (at most ``SHOWN``, then how many more): not a
            task list, a task without an id or ``data.row_id``, an unknown row id, a task without
            a label, annotators who disagree, more than one choice in an annotation, a label not
            in ``classes``.
    """
    if not isinstance(export, list):
        raise DataError(f"{where}: expected a Label Studio JSON export (a list of tasks), got {type(export).__name__}")
    classes, known = [str(c) for c in classes], set(known)
    problems: list[str] = []
    found: dict[str, tuple[str, int, int]] = {}  # row_id -> (label, task id, annotations)
    for i, task in enumerate(export):
        task_id = task.get("id") if isinstance(task, dict) else None
        name = f"task {task_id}" if task_id is not None else f"task #{i + 1}"
        if not isinstance(task_id, int) or isinstance(task_id, bool):
            problems.append(f"{name}: no integer id (not a Label Studio export task)")
            continue
        row_id = (task.get("data") or {}).get(ROW_ID) if isinstance(task.get("data"), dict) else None
        if not isinstance(row_id, str):
            problems.append(f"{name}: no data.{ROW_ID} (not a task label.py export wrote)")
            continue
        if row_id not in known:
            problems.append(f"{name}: unknown {ROW_ID} {row_id!r} (not in this labeling's tasks)")
            continue
        labels, bad = _annotation_labels(task, classes)
        problems += [f"{name} ({ROW_ID} {row_id}): {b}" for b in bad]
        if bad:
            continue
        distinct = sorted(set(labels))
        if not labels:
            if unlabeled != "skip":
                problems.append(f"{name} ({ROW_ID} {row_id}): no label (no annotation, or only cancelled ones)")
            continue
        if len(distinct) > 1:
            counts = ", ".join(f"{label!r} x{labels.count(label)}" for label in distinct)
            problems.append(f"{name} ({ROW_ID} {row_id}): conflicting labels from its annotators: {counts}")
            continue
        if row_id in found and found[row_id][0] != distinct[0]:
            problems.append(f"{name} ({ROW_ID} {row_id}): label {distinct[0]!r} conflicts with task "
                            f"{found[row_id][1]}'s {found[row_id][0]!r} for the same row")
            continue
        previous = found.get(row_id, (None, task_id, 0))
        found[row_id] = (distinct[0], previous[1], previous[2] + len(labels))
    if problems:
        more = f"; ... and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        raise DataError(f"{where}: {len(problems)} problem(s): {'; '.join(problems[:SHOWN])}{more}")
    ids = list(found)
    return pa.table({ROW_ID: pa.array(ids, pa.string()), "label": pa.array([found[r][0] for r in ids], pa.string()),
                     "task_id": pa.array([found[r][1] for r in ids], pa.int64()),
                     "annotations": pa.array([found[r][2] for r in ids], pa.int64())})


def _annotation_labels(task: dict, classes: list[str]) -> tuple[list[str], list[str]]:
    """(one label per annotation that chose one, problems) of a task's non-cancelled annotations."""
    labels, bad = [], []
    for annotation in task.get("annotations") or []:
        if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
            continue
        chosen = [c for result in annotation.get("result") or [] if isinstance(result, dict)
                  and result.get("type") == "choices" and result.get("from_name") == CONTROL
                  for c in (result.get("value") or {}).get("choices") or []]
        who = f"annotation {annotation.get('id')}"
        if len(chosen) > 1:
            bad.append(f"{who}: {len(chosen)} choices ({', '.join(map(repr, chosen))}), expected one")
        elif chosen and str(chosen[0]) not in classes:
            bad.append(f"{who}: label {chosen[0]!r} is not a class ({', '.join(classes)})")
        elif chosen:
            labels.append(str(chosen[0]))
    return labels, bad


def labeled_rows(rows: pa.Table, labels: pa.Table, target: str, classes: Sequence[str], values: Sequence[Any],
                 target_type: pa.DataType | None = None) -> pa.Table:
    """The exported ``rows`` that got a label, with the label as the ``target`` column (and no ``row_id``).

    Args:
        rows: the exported rows with their ``row_id`` column.
        labels: ``parse_export``'s table.
        target: the target column's name.
        classes: the class names (choices); values: the target value each stands for (same order).
        target_type: the target column's Arrow type (the dataset's); None: inferred from ``values``.

    Returns:
        Rows in ``labels`` order: the feature columns, then ``target``.
    """
    position = {row_id: i for i, row_id in enumerate(rows.column(ROW_ID).to_pylist())}
    missing = [r for r in labels.column(ROW_ID).to_pylist() if r not in position]
    if missing:
        raise DataError(f"{ROW_ID} {missing[0]!r}: labeled but not among the exported rows ({len(missing)} such)")
    take = rows.take(pa.array([position[r] for r in labels.column(ROW_ID).to_pylist()], pa.int64()))
    value_of = {str(c): v for c, v in zip(classes, values)}
    column = pa.array([value_of[label] for label in labels.column("label").to_pylist()], target_type)
    features = take.drop_columns([ROW_ID])
    return features.append_column(target, column) if target not in features.column_names else \
        features.set_column(features.column_names.index(target), target, column)


def _json_value(value: Any) -> Any:
    """A cell as strict JSON: NaN and infinities -> None, times -> ISO text, decimals -> float, bytes -> hex."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value

