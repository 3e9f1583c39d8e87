"""Schemas declared in config, for sources whose columns the user names (files, SQL)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.types as pat

from factory.data.sources.base import LoadedTable
from factory.data.spec import TASKS, TableSchema
from factory.errors import DataError

_MAX_MULTICLASS = 20  # integer targets with more distinct values are regression targets
_MAX_LISTED = 12  # names shown in one error line before "... (N more)"


def declare_schema(
    table: pa.Table,
    target: str,
    features: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    task: str | None = None,
    positive_label: str | int | None = None,
    origin: str | None = None,
) -> TableSchema:
    """Check config-declared columns against a table and fill in what was left out.

    Args:
        table: the loaded table.
        target: the column to predict.
        features: feature columns in model order; ``None``: every column but the target.
        categorical: the features to treat as categorical; ``None``: the string,
            dictionary and bool features, except text columns that are mostly numbers
            (a CSV column with a few stray words): those are numeric, and validation
            reports the words.
        task: ``binary``, ``multiclass`` or ``regression``; ``None``: inferred from the
            target (non-numeric or two distinct values: binary; integer with at most 20
            distinct values: multiclass; otherwise regression). A ``positive_label``
            implies binary.
        positive_label: the target value meaning class 1 when the target is not 0/1.
        origin: the file or query the table came from, for messages.

    Returns:
        The schema; ``positive_label`` is converted to the target's own value type
        (``"1"`` from the command line matches an integer 1).

    Raises:
        DataError: a repeated column name, an unknown column, no feature column, a
            feature that is neither numeric nor categorical, an unknown task, or a binary
            target whose class 1 is not known.

    Example:
        >>> t = pa.table({"x": [1.0, 2.0], "churned": ["Yes", "No"]})
        >>> declare_schema(t, "churned", positive_label="Yes").task
        'binary'
    """
    columns = table.column_names
    where = origin or "the table"
    check_unique_columns(columns, where)
    _check_known([target], columns, "target")
    if features is None:
        features = [c for c in columns if c != target]
        if not features:
            raise DataError(f"{where} has no feature columns, only the target {target!r}; a model needs inputs")
    else:
        features = _names(features)
        if not features:
            raise DataError("data.source.features is empty; name at least one column, or null for all")
    _check_known(features, columns, "feature")
    if target in features:
        raise DataError(f"target column {target!r} is also listed in data.source.features")
    if categorical is None:
        categorical = [c for c in features if _is_categorical(table.schema.field(c).type)
                       and not _mostly_numbers(table.column(c))]
    else:
        categorical = _names(categorical)
        _check_known(categorical, features, "categorical")
    for name in features:
        kind = table.schema.field(name).type
        # Text declared numeric (numbers in a CSV) passes: validate_table checks every value.
        if name not in categorical and not (_is_numeric(kind) or pat.is_string(kind) or pat.is_large_string(kind)):
            raise DataError(
                f"feature column {name!r} has type {kind}: name it in data.source.categorical"
                " or leave it out of data.source.features"
            )

    target_type = table.schema.field(target).type
    values = table.column(target).drop_null().unique().to_pylist()
    if task is None:
        numeric = _is_numeric(target_type) and not pat.is_boolean(target_type)
        if positive_label is not None or not numeric or len(values) == 2:
            task = "binary"
        elif pat.is_integer(target_type) and len(values) <= _MAX_MULTICLASS:
            task = "multiclass"
        else:
            task = "regression"
    elif task not in TASKS:
        raise DataError(f"unknown data.source.task {task!r}; choose one of {', '.join(TASKS)}")
    if positive_label is not None and task != "binary":
        raise DataError(f"data.source.positive_label is set but the task is {task}, not binary")
    if task == "regression" and not _is_numeric(target_type):
        raise DataError(f"regression target {target!r} has type {target_type}, not a number")
    if task == "binary" and values:  # an empty table is the DataModule's to reject
        positive_label = _binary_label(target, values, positive_label)

    kinds = {c: "categorical" if c in categorical else "numeric" for c in features}
    return TableSchema(features=kinds, target=target, task=task, positive_label=positive_label)


@dataclass(frozen=True)
class SchemaDeclaration:
    """The schema keys of a config-declared source (files, warehouse), applied to its table."""

    target: str
    features: Sequence[str] | None = None
    categorical: Sequence[str] | None = None
    task: str | None = None
    positive_label: str | int | None = None

    def apply(self, table: pa.Table, origin: str | None = None) -> LoadedTable:
        """Declare the schema over ``table`` (read from ``origin``) and keep only its features and target."""
        table = decimals_to_float(table)
        schema = declare_schema(table, self.target, self.features, self.categorical, self.task,
                                self.positive_label, origin)
        return LoadedTable(table.select([*schema.features, schema.target]), schema)


def decimals_to_float(table: pa.Table) -> pa.Table:
    """Cast decimal columns (SQL NUMERIC, DuckDB literals like ``1.5``) to float64."""
    for i, field in enumerate(table.schema):
        if pat.is_decimal(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.float64()))
    return table


def listing(names: Iterable[object], limit: int = _MAX_LISTED) -> str:
    """``a, b, c, ... (7 more)``: a list short enough for a one-line error."""
    names = [str(n) for n in names]
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_unique_columns(names: Sequence[str], where: str) -> None:
    """Raise ``DataError`` naming the first column that appears more than once in ``where``."""
    repeated = [(name, n) for name, n in Counter(names).items() if n > 1]
    if repeated:
        name, n = repeated[0]
        more = f" (also {listing(repr(r) for r, _ in repeated[1:])})" if len(repeated) > 1 else ""
        raise DataError(f"column {name!r} appears {n} times in {where}{more}; rename the duplicates")


def first_line(err: BaseException) -> str:
    """The first line of an exception's message: drivers append SQL, hints and tracebacks."""
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def _binary_label(target: str, values: list, positive_label: object) -> object:
    """The positive label as a value of the target; None when the target is already 0/1."""
    if positive_label is None:
        if set(values) <= {0, 1}:  # also True/False and 0.0/1.0
            return None
        raise DataError(
            f"binary target {target!r} has values {listing(sorted(values, key=str))}: set"
            " data.source.positive_label to the value that means class 1"
        )
    if positive_label in values:
        return positive_label
    by_text = {str(v): v for v in values}  # "1" from a CLI override matches the integer 1
    if str(positive_label) in by_text:
        return by_text[str(positive_label)]
    raise DataError(
        f"data.source.positive_label {positive_label!r} is not a value of target {target!r};"
        f" values: {listing(sorted(values, key=str))}"
    )


def _check_known(names: list[str], available: list[str], what: str) -> None:
    unknown = [n for n in names if n not in available]
    if unknown:
        pool = "features" if what == "categorical" else "columns"
        raise DataError(
            f"unknown {what} column {listing(map(repr, unknown))}; available {pool}:"
            f" {listing(available)}"
        )


def _names(value: str | Sequence[str]) -> list[str]:
    # A single name from the command line (features=amount) arrives as a string.
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _is_categorical(kind: pa.DataType) -> bool:
    return (
        pat.is_string(kind)
        or pat.is_large_string(kind)
        or pat.is_dictionary(kind)
        or pat.is_boolean(kind)
    )


def _mostly_numbers(column: pa.ChunkedArray) -> bool:
    """Text where most but not all values read as numbers: numbers with stray words.

    A column of numbers only is text by choice (a Parquet writer's, codes like "007");
    numbers with a few words ("n.a.", "12 EUR") are a numeric column to report, not a
    categorical with one level per number.
    """
    if not (pat.is_string(column.type) or pat.is_large_string(column.type)):
        return False
    import pandas as pd

    counts = column.drop_null().value_counts()  # parse each distinct value once
    values, rows = counts.field("values").to_pandas(), counts.field("counts").to_numpy()
    numeric = pd.to_numeric(values, errors="coerce").notna().to_numpy()
    total = rows.sum()
    return bool(total) and 0.5 <= rows[numeric].sum() / total < 1


def _is_numeric(kind: pa.DataType) -> bool:
    # Bools read as 0/1; null-typed columns are all-missing (or from an empty result).
    return (
        pat.is_integer(kind)
        or pat.is_floating(kind)
        or pat.is_decimal(kind)
        or pat.is_boolean(kind)
        or pat.is_null(kind)
    )
