"""Checks that a source's table can be used as its schema declares, before any splitting.

Every failure is a ``DataError`` with a one-line message naming the source, column or
value, so the CLI can print it as ``error: ...`` and the user knows what to fix.
"""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from factory.data.sources.base import LoadedTable
from factory.data.spec import TASKS, TableSchema
from factory.errors import DataError

# How many distinct values an error message lists before eliding the rest.
_SHOWN = 5


def validate_table(loaded: LoadedTable, source: str = "source") -> None:
    """Raise ``DataError`` if ``loaded.table`` does not match ``loaded.schema``.

    Nulls in features are accepted (the preprocessor imputes them); nulls in the target
    are not.

    Args:
        loaded: the table and the schema its source declares.
        source: the source's name, used in messages.

    Raises:
        DataError: an empty table, no feature columns, missing columns, a target
            unusable for the task, a numeric feature holding non-numbers or infinite
            values, or an image shape that does not match the numeric features.
    """
    table, schema = loaded.table, loaded.schema
    if schema.task not in TASKS:
        raise DataError(f"source '{source}' declares task '{schema.task}'; expected one of {', '.join(TASKS)}")
    if table.num_rows == 0:
        raise DataError(f"source '{source}' returned an empty table (0 rows)")
    if not schema.features:
        raise DataError(f"source '{source}' has no feature columns, only the target '{schema.target}'")
    missing = [c for c in [schema.target, *schema.features] if c not in table.column_names]
    if missing:
        raise DataError(
            f"source '{source}' has no column(s) {', '.join(map(repr, missing))}; "
            f"table columns: {_listing(table.column_names)}"
        )
    _check_target(table.column(schema.target), schema)
    _check_features(table, schema)
    for name in schema.numeric:  # text columns were checked (and parsed) by _check_features
        if pa.types.is_floating(_value_type(table.column(name).type)):
            check_finite(table.column(name).to_numpy(), f"numeric feature '{name}'")
    if schema.image_shape is not None and math.prod(schema.image_shape) != len(schema.numeric):
        raise DataError(
            f"source '{source}' declares image_shape {tuple(schema.image_shape)} "
            f"({math.prod(schema.image_shape)} pixels) but has {len(schema.numeric)} numeric features"
        )


def label_mask(column: pa.ChunkedArray, label: str | int) -> pa.ChunkedArray:
    """Rows of ``column`` equal to ``label``, compared in the column's own type.

    ``label`` comes from a config, so ``"1"`` must match an integer column and ``1`` a
    string column; a label that cannot be read in the column's type matches nothing.
    """
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.equal(column, str(label))
    try:
        scalar = pa.scalar(label).cast(column.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pc.fill_null(pc.equal(column, pa.scalar(None, column.type)), False)
    return pc.equal(column, scalar)


def check_finite(values: np.ndarray, what: str, nan: bool = False) -> None:
    """Raise ``DataError`` if ``values`` hold infinities (or, with ``nan``, NaNs).

    In features NaN means missing (imputed); an infinity would turn every loss and
    metric into NaN, so it is refused, naming the column, the count and the first row.

    Args:
        values: one column, float, row order of the table.
        what: the column as messages name it (``numeric feature 'amount'``).
        nan: also refuse NaN (targets, where nothing is imputed).
    """
    bad = ~np.isfinite(values) if nan else np.isinf(values)
    if bad.any():
        rows = np.flatnonzero(bad)
        kind = "non-finite (NaN or infinite)" if nan else "infinite"
        raise DataError(
            f"{what} has {len(rows)} {kind} value(s), the first {values[rows[0]]} at row {rows[0]};"
            " drop those rows or replace the values"
        )


def _check_target(column: pa.ChunkedArray, schema: TableSchema) -> None:
    name = schema.target
    nulls = column.null_count
    if nulls:
        raise DataError(f"target '{name}' has {nulls} missing value(s); drop or fill those rows")
    kind = _value_type(column.type)
    if pa.types.is_floating(kind):
        check_finite(column.cast(kind).to_numpy(), f"target '{name}'", nan=True)
    if schema.task == "regression":
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            raise DataError(f"regression target '{name}' has type {kind}, not numbers")
        return
    values = pc.unique(column.cast(kind)).to_pylist()
    if len(values) < 2:
        raise DataError(f"target '{name}' has a single class ({values[0]!r}); classification needs two or more")
    if schema.task != "binary":
        return
    if schema.positive_label is not None:
        if not pc.any(label_mask(column, schema.positive_label)).as_py():
            raise DataError(
                f"positive_label {schema.positive_label!r} does not occur in target '{name}' "
                f"(values: {_listing(values)})"
            )
        return
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        raise DataError(
            f"binary target '{name}' holds strings ({_listing(values)}); "
            "set positive_label to the value that means class 1"
        )
    if not set(values) <= {0, 1}:  # True/False compare equal to 1/0
        raise DataError(f"binary target '{name}' must be 0/1 or set positive_label; values: {_listing(values)}")


def _check_features(table: pa.Table, schema: TableSchema) -> None:
    as_text = []
    for name, kind in schema.features.items():
        dtype = table.column(name).type
        if pa.types.is_dictionary(dtype):
            dtype = dtype.value_type
        if kind == "categorical":
            if pa.types.is_nested(dtype) or pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
                raise DataError(f"categorical feature '{name}' has type {dtype}, which has no levels")
        elif pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
            as_text.append(name)
        elif not (
            pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype)
            or pa.types.is_decimal(dtype) or pa.types.is_null(dtype)
        ):
            raise DataError(f"numeric feature '{name}' has type {dtype}, not numbers")
    if as_text:
        _check_numeric_text(table.select(as_text))


def _check_numeric_text(table: pa.Table) -> None:
    """Numeric columns read as strings (a CSV with "12.5" and "12 EUR") must all parse as floats."""
    # pandera costs ~0.6 s to import; only tables with such columns pay for it.
    import pandera.pandas as pandera
    from pandera.errors import SchemaErrors

    checks = {name: pandera.Column(float, coerce=True, nullable=True) for name in table.column_names}
    try:
        parsed = pandera.DataFrameSchema(checks).validate(table.to_pandas(), lazy=True)
    except SchemaErrors as err:
        failures = err.failure_cases.dropna(subset=["failure_case"])
        name = failures["column"].iloc[0]
        cases = failures[failures["column"] == name].drop_duplicates("index").sort_values("index")
        shown = ", ".join(f"{case!r} (row {row})" for case, row in zip(cases["failure_case"][:_SHOWN],
                                                                        cases["index"][:_SHOWN]))
        others = sorted(set(failures["column"]) - {name})
        also = f" (also in {_listing(others)})" if others else ""
        raise DataError(
            f"numeric feature '{name}' has {len(cases)} non-numeric value(s): {shown}{also}; "
            f"clean them, or name '{name}' in data.source.categorical"
        ) from None
    for name in table.column_names:
        check_finite(parsed[name].to_numpy(dtype=np.float64), f"numeric feature '{name}'")


def _value_type(dtype: pa.DataType) -> pa.DataType:
    return dtype.value_type if pa.types.is_dictionary(dtype) else dtype


def _listing(values: list) -> str:
    shown = ", ".join(repr(v) for v in values[:_SHOWN])
    return shown + (f", ... ({len(values)} in all)" if len(values) > _SHOWN else "")
