"""Labels that arrive after the requests they label, joined to the request log.

A labels file (Parquet or CSV: ``request_id``, optional ``row`` (default 0), ``label``, any
extra column such as a sensitive attribute the log excludes) names the true label of logged
rows. ``join_labels`` streams the log and keeps the labelled rows only: memory grows with the
labels, not the log. ``factory.monitoring.quality`` scores what it returns.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from factory.errors import DataError

#: Columns ``join_labels`` always returns (``prob_<label>`` too, when the log has them).
JOINED = ("time", "version", "score", "prediction", "label")


def _empty_log():
    import pyarrow as pa

    return pa.schema([("request_id", pa.string()), ("row", pa.int32()), ("time", pa.timestamp("us", "UTC")),
                      ("version", pa.int64()), ("score", pa.float64()), ("prediction", pa.string())])


def load_labels(path, *, id_column: str = "request_id", row_column: str = "row", label_column: str = "label",
                columns: Iterable[str] = ()):
    """A labels file as a table: ``request_id`` (text), ``row`` (int32), ``label``, then ``columns``.

    Rows without a label are left out (not labelled yet); a (request id, row) labelled twice the
    same way is kept once.

    Raises:
        DataError: the file is missing or of an unknown kind, a column is missing (named with the
            file), or one (request id, row) carries two different labels (the id is named).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    path = Path(path)
    wanted = [id_column, label_column, *columns]
    table = _read(path, id_column)
    missing = [c for c in wanted if c not in table.column_names]
    if missing:
        raise DataError(f"labels file {path}: no column(s) {missing} (it has {table.column_names})")
    rows = (pc.cast(table[row_column], pa.int32()) if row_column in table.column_names
            else pa.array(np.zeros(table.num_rows, np.int32)))
    table = pa.table({"request_id": pc.cast(table[id_column], pa.string()), "row": rows,
                      "label": table[label_column], **{c: table[c] for c in columns}})
    table = table.filter(pc.and_(pc.is_valid(table["label"]), pc.is_valid(table["request_id"])))
    counted = table.append_column("_i", pa.array(np.arange(table.num_rows))).group_by(["request_id", "row"]) \
        .aggregate([("label", "count_distinct"), ("_i", "min")])
    conflict = counted.filter(pc.greater(counted["label_count_distinct"], 1))
    if conflict.num_rows:
        first = conflict.slice(0, 1).to_pylist()[0]
        seen = table.filter(pc.and_(pc.equal(table["request_id"], first["request_id"]),
                                    pc.equal(table["row"], first["row"])))["label"].unique().to_pylist()
        raise DataError(f"labels file {path}: request_id {first['request_id']!r} row {first['row']} has "
                        f"conflicting labels {seen} ({conflict.num_rows} (request_id, row) in conflict)")
    if counted.num_rows < table.num_rows:  # duplicates that agree: the first of each
        table = table.take(np.sort(counted["_i_min"].to_numpy()))
    return table


def _read(path: Path, id_column: str):
    import pyarrow.csv as pv
    import pyarrow.parquet as pq

    if not path.exists():
        raise DataError(f"labels file {path}: not found")
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix in (".parquet", ".pq") or path.is_dir():
        return pq.read_table(path)
    if suffix in (".csv", ".csv.gz"):  # ids stay text: "0042" is not 42
        import pyarrow as pa

        return pv.read_csv(path, convert_options=pv.ConvertOptions(column_types={id_column: pa.string()}))
    raise DataError(f"labels file {path}: unknown kind {suffix!r}; use .parquet or .csv")


def join_labels(batches, labels, *, columns: Iterable[str] = ()):
    """The log's labelled rows: ``time, version, score, prediction, label``, ``prob_*``, ``columns``.

    Each batch is cut to the rows whose request id is labelled (``pyarrow.compute.is_in``) before
    anything is kept, so memory follows the labelled rows, not the log. Labels are cast to the
    type of the log's ``prediction`` (``1`` and ``1.0`` -> ``"1"`` for a class label). The
    schema metadata ``factory.labels`` counts the join (``join_counts``): ``labels``, ``matched``
    (log rows kept), ``unmatched`` (labels of rows the log does not hold: other windows, unknown
    ids; ignored) and ``log_rows`` scanned.

    Args:
        batches: ``pyarrow.RecordBatch``es (``window.iter_batches``) or one ``pyarrow.Table``.
        labels: ``load_labels``' table (``request_id``, ``row``, ``label``, extra columns).
        columns: more columns to keep, from the log or else from the labels (a sensitive attribute).

    Raises:
        DataError: a column of ``columns`` is in neither the log nor the labels.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(batches, pa.Table):
        batches = batches.to_batches()
    ids = pc.unique(labels["request_id"])
    kept, log_rows, schema = [], 0, None
    for batch in batches:
        log_rows += batch.num_rows
        schema = batch.schema
        wanted = [c for c in ("request_id", "row", *JOINED, *columns) if c in schema.names and c != "label"]
        wanted += [c for c in schema.names if c.startswith("prob_")]
        picked = batch.select(wanted).filter(pc.is_in(batch["request_id"], value_set=ids))
        if picked.num_rows or not kept:  # (the first batch even when empty: the columns' types)
            kept.append(picked)
    names = schema.names if schema is not None else []
    absent = [c for c in columns if c not in names and c not in labels.column_names]
    if absent:
        raise DataError(f"join_labels: column(s) {absent} in neither the request log nor the labels")
    log = (pa.concat_tables([pa.Table.from_batches([b]) for b in kept], promote_options="default").combine_chunks()
           if kept else _empty_log().empty_table())  # no log at all: the columns still there, with no rows
    log = log.set_column(log.schema.get_field_index("row"), "row", pc.cast(log["row"], pa.int32()))
    from_labels = labels.select(["request_id", "row", "label", *[c for c in columns if c not in names]])
    from_labels = from_labels.set_column(1, "row", pc.cast(from_labels["row"], pa.int32()))
    joined = log.join(from_labels, keys=["request_id", "row"], join_type="inner")
    if "prediction" in joined.column_names:
        classes = set(pc.unique(joined["prediction"]).to_pylist())
        joined = joined.set_column(joined.schema.get_field_index("label"), "label",
                                   like(joined["label"], joined.schema.field("prediction").type, classes))
    if "time" in joined.column_names:
        joined = joined.sort_by([("time", "ascending"), ("request_id", "ascending"), ("row", "ascending")])
    order = [c for c in (*JOINED, *sorted(c for c in joined.column_names if c.startswith("prob_")),
                         "request_id", "row", *columns) if c in joined.column_names]
    found = joined.group_by(["request_id", "row"]).aggregate([]).num_rows  # a row logged twice is one label
    counts = {"labels": labels.num_rows, "matched": joined.num_rows, "unmatched": labels.num_rows - found,
              "log_rows": log_rows}
    return joined.select(list(dict.fromkeys(order))).replace_schema_metadata({"factory.labels": json.dumps(counts)})


def join_counts(table) -> dict:
    """``join_labels``' counts (``labels``, ``matched``, ``unmatched``, ``log_rows``) of its table."""
    meta = table.schema.metadata or {}
    return json.loads(meta.get(b"factory.labels", b"{}"))


def like(labels, target, classes=frozenset()):
    """``labels`` as the prediction's type: class labels as text (integral floats without ``.0``;
    booleans as ``"True"``/``"False"``, the server's names for a bool target's classes, or as
    ``"1"``/``"0"`` where those are the ``classes`` predicted)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    labels = labels.combine_chunks() if isinstance(labels, pa.ChunkedArray) else labels
    if labels.type == target:
        return labels
    if pa.types.is_string(target):
        if pa.types.is_boolean(labels.type) and not classes <= {"0", "1", None}:
            return pa.array([None if v is None else str(v) for v in labels.to_pylist()], pa.string())
        if pa.types.is_boolean(labels.type):
            labels = pc.cast(labels, pa.int64())
        if pa.types.is_floating(labels.type):
            whole = pc.equal(labels, pc.floor(labels))
            if pc.all(pc.fill_null(whole, True)).as_py():
                labels = pc.cast(labels, pa.int64())
        return pc.cast(labels, pa.string())
    try:
        return pc.cast(labels, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise DataError(f"labels: label column of type {labels.type} cannot be read as the log's "
                        f"prediction type {target}: {str(e).splitlines()[0]}") from None
