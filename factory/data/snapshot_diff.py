"""What changed between two snapshots: rows added and removed, schema, per-column summaries.

Rows are compared as whole rows with DuckDB's ``EXCEPT ALL`` (a hash of every row on both
sides, duplicates counted: 1M x 12 columns in about a second); no row or value is kept in the
answer, only counts. Category levels are named only for declared categorical features and a
classification target, never for PII columns or other text (which may hold anything).
"""
from __future__ import annotations

from typing import Any

import pyarrow as pa

TOP_LEVELS = 5
LEVEL_CHARS = 32  # a level is cut to this many characters in the answer


def compare(a, b) -> dict[str, Any]:
    """The difference from snapshot ``a`` to ``b`` (``factory.data.snapshots.Snapshot``), JSON-able.

    Returns:
        ``{"a": {id, rows, created}, "b": ..., "rows": {added, removed, unchanged, compared_on},
        "schema": {columns_added, columns_removed, columns_retyped, features_added,
        features_removed, kinds_changed, changed}, "columns": {name: {kind, a, b}}}``.
        ``compared_on`` lists the columns rows were compared on when some were added, removed or
        retyped (``None``: all of them); ``changed`` maps target, task, positive_label or
        image_shape to its ``[a, b]`` values; a column's ``a``/``b`` summaries are ``None`` on
        the side that lacks it.
    """
    types_a, types_b = _types(a.table), _types(b.table)
    shared = [c for c in b.table.column_names if c in types_a and types_a[c] == types_b[c]]
    everything = len(shared) == len(types_a) == len(types_b)
    added, removed = row_changes(a.table, b.table, shared)
    return {
        "a": _identity(a),
        "b": _identity(b),
        "rows": {"added": added, "removed": removed, "unchanged": b.table.num_rows - added,
                 "compared_on": None if everything else shared},
        "schema": schema_changes(a, b, types_a, types_b),
        "columns": {c: _column_shift(c, a, b) for c in _union(a.table.column_names, b.table.column_names)},
    }


def row_changes(a: pa.Table, b: pa.Table, columns: list[str]) -> tuple[int, int]:
    """``(rows of b not in a, rows of a not in b)`` on ``columns``, as multisets (a row twice in b
    and once in a is one added row). No shared column: every row differs."""
    if not columns:
        return b.num_rows, a.num_rows
    import duckdb

    con = duckdb.connect()
    try:
        con.register("a", _decoded(a.select(columns)))
        con.register("b", _decoded(b.select(columns)))
        count = "SELECT count(*) FROM (SELECT * FROM {} EXCEPT ALL SELECT * FROM {})"
        return con.execute(count.format("b", "a")).fetchone()[0], con.execute(count.format("a", "b")).fetchone()[0]
    finally:
        con.close()


def schema_changes(a, b, types_a: dict[str, str], types_b: dict[str, str]) -> dict[str, Any]:
    """Columns added, removed and retyped (Arrow types), features added, removed and re-kinded,
    and the target, task, positive label or image shape when they changed."""
    fa, fb = a.schema.features, b.schema.features
    changed = {}
    for name in ("target", "task", "positive_label", "image_shape"):
        va, vb = getattr(a.schema, name), getattr(b.schema, name)
        va, vb = (list(v) if isinstance(v, tuple) else v for v in (va, vb))
        if va != vb:
            changed[name] = [va, vb]
    return {
        "columns_added": {c: t for c, t in types_b.items() if c not in types_a},
        "columns_removed": {c: t for c, t in types_a.items() if c not in types_b},
        "columns_retyped": {c: [types_a[c], t] for c, t in types_b.items() if c in types_a and types_a[c] != t},
        "features_added": {c: k for c, k in fb.items() if c not in fa},
        "features_removed": {c: k for c, k in fa.items() if c not in fb},
        "kinds_changed": {c: [fa[c], k] for c, k in fb.items() if c in fa and fa[c] != k},
        "changed": changed,
    }


def summary(column: pa.ChunkedArray, kind: str, levels: bool) -> dict[str, Any]:
    """One column in a few numbers: its null share and, by ``kind``, mean/std/min/max (numeric),
    distinct count and, with ``levels``, the top levels' shares (categorical), or min/max (time)."""
    n = len(column)
    out: dict[str, Any] = {"null_share": column.null_count / n if n else None}
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    try:
        out.update(_figures(column, kind, levels, n))
    except pa.ArrowNotImplementedError:  # a type without the kernel (durations' min_max): its null share alone
        pass
    return out


def _figures(column: pa.ChunkedArray, kind: str, levels: bool, n: int) -> dict[str, Any]:
    import pyarrow.compute as pc

    out: dict[str, Any] = {}
    if kind == "numeric":
        values = column.cast(pa.float64()) if pa.types.is_decimal(column.type) else column
        bounds = pc.min_max(values)
        out.update(mean=_float(pc.mean(values)), std=_float(pc.stddev(values, ddof=1)),
                   min=_float(bounds["min"]), max=_float(bounds["max"]))
    elif kind == "categorical":
        counts = pc.value_counts(column.drop_null())
        out["distinct"] = len(counts)
        if levels and len(counts):
            order = pc.array_sort_indices(counts.field("counts"), order="descending")
            top = counts.take(order[:TOP_LEVELS]).to_pylist()
            out["top"] = {str(t["values"])[:LEVEL_CHARS]: t["counts"] / n for t in top}
    elif kind == "time":
        bounds = pc.min_max(column)
        out.update(min=_str(bounds["min"]), max=_str(bounds["max"]))
    return out


def column_kind(name: str, type_: pa.DataType, schema) -> str:
    """numeric | categorical | time | other: declared feature kinds first, then the Arrow type."""
    if pa.types.is_dictionary(type_):
        type_ = type_.value_type
    declared = schema.features.get(name)
    if declared == "categorical" or (name == schema.target and schema.task != "regression"):
        return "categorical"
    if pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_):
        return "numeric"
    if pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_boolean(type_):
        return "categorical"
    if pa.types.is_temporal(type_):
        return "time"
    return "other"


def _column_shift(name: str, a, b) -> dict[str, Any]:
    sides = {}
    kind = None
    for side, snap in (("a", a), ("b", b)):
        if name not in snap.table.column_names:
            sides[side] = None
            continue
        kind = column_kind(name, snap.table.schema.field(name).type, snap.schema)
        sides[side] = summary(snap.table.column(name), kind, _levels_shown(name, snap))
    return {"kind": kind, **sides}


def _levels_shown(name: str, snap) -> bool:
    """Levels are named for declared categoricals and a classification target, never PII."""
    if name in (snap.record.get("pii") or {}):
        return False
    return snap.schema.features.get(name) == "categorical" or (
        name == snap.schema.target and snap.schema.task != "regression")


def _types(table: pa.Table) -> dict[str, str]:
    # A dictionary column holds its values' type: re-encoding is no schema change.
    return {f.name: str(f.type.value_type if pa.types.is_dictionary(f.type) else f.type) for f in table.schema}


def _decoded(table: pa.Table) -> pa.Table:
    # DuckDB reads dictionaries as ENUMs, and two ENUMs with other levels do not compare.
    columns = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.Table.from_arrays(columns, names=table.column_names)


def _identity(snap) -> dict[str, Any]:
    return {"id": snap.id, "rows": snap.table.num_rows, "created": snap.record.get("created")}


def _union(first: list[str], second: list[str]) -> list[str]:
    return [*first, *(c for c in second if c not in first)]


def _float(scalar) -> float | None:
    value = scalar.as_py()
    return None if value is None else float(value)


def _str(scalar) -> str | None:
    value = scalar.as_py()
    return None if value is None else str(value)
