"""``data.source.filter``: rows to keep, as a list of ``[column, op, value]`` conditions.

The list form is pyarrow's own (``pyarrow.parquet.filters_to_expression``): a flat list of
conditions is their AND; a list of such lists is an OR of ANDs. It becomes one
``pyarrow.dataset`` expression, which a streamed read pushes down (``factory.data.parquet_stream``:
files of Hive partitions and row groups whose statistics exclude it are never read) and an
in-memory read applies after loading.

Example (YAML, or ``'data.source.filter=[[amount,">=",10]]'`` on the command line):
    filter:
      - [amount, ">=", 10]
      - [merchant_category, in, [grocery, travel]]
"""
from __future__ import annotations

from collections.abc import Sequence

from factory.data.sources.declared import listing
from factory.errors import DataError

OPS = ("=", "==", "!=", "<", "<=", ">", ">=", "in", "not in")


def filter_expression(spec: Sequence | None, columns: Sequence[str]):
    """The ``pyarrow.dataset.Expression`` of ``spec`` over a table with ``columns``; None for no filter.

    Raises:
        DataError: a condition that is not ``[column, op, value]``, an unknown column or op,
            or an ``in`` whose value is not a list; one line naming the condition.
    """
    if spec is None or len(spec) == 0:
        return None
    import pyarrow.parquet as pq

    groups = [list(spec)] if _is_condition(spec[0]) else [list(group) for group in spec]
    plain = []
    for group in groups:
        conditions = []
        for condition in group:
            conditions.append(_checked(condition, columns))
        plain.append(conditions)
    return pq.filters_to_expression(plain)


def filter_columns(spec: Sequence | None) -> list[str]:
    """The columns ``spec`` reads (to add to a projection), in first-use order."""
    if spec is None or len(spec) == 0:
        return []
    groups = [spec] if _is_condition(spec[0]) else spec
    return list(dict.fromkeys(str(condition[0]) for group in groups for condition in group))


def _is_condition(item) -> bool:
    return not isinstance(item, str) and isinstance(item, Sequence) and len(item) > 0 \
        and isinstance(item[0], str)


def _checked(condition, columns: Sequence[str]) -> tuple:
    shown = f"data.source.filter condition {_show(condition)}"
    if isinstance(condition, str) or not isinstance(condition, Sequence) or len(condition) != 3:
        raise DataError(f"{shown}: expected [column, op, value], e.g. [amount, '>=', 10]")
    column, op, value = condition
    if column not in columns:
        raise DataError(f"{shown}: unknown column {column!r}; columns: {listing(columns)}")
    if op not in OPS:
        raise DataError(f"{shown}: unknown op {op!r}; expected one of {', '.join(OPS)}")
    if op in ("in", "not in"):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise DataError(f"{shown}: {op!r} needs a list of values, e.g. [{column}, in, [a, b]]")
        value = list(value)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        raise DataError(f"{shown}: {op!r} compares with one value, not a list")
    return str(column), "==" if op == "=" else op, value


def _show(condition) -> str:
    if isinstance(condition, Sequence) and not isinstance(condition, str):
        return "[" + ", ".join(map(repr, (list(v) if isinstance(v, Sequence) and not isinstance(v, str)
                                          else v for v in condition))) + "]"
    return repr(condition)
