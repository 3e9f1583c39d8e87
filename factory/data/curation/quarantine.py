"""Rows that broke a declared rule, kept aside with the rule and value, never trained on.

The quarantine table has one row per (source row, broken rule)::

    _row     int64   the row's position in the source's table
    _rule    string  "amount: in_range(0, 10000)", "unique(merchant_id, amount)", ...
    _column  string  the column checked ("merchant_id, amount" for a unique key)
    _value   string  the value that failed (a pii column's: its HMAC, or null when dropped)
    ...              the row's own columns, pii columns hashed or dropped as configured

A row breaking two rules is listed twice and counted once in the quarantined share.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from factory.data.curation.columns import Failure
from factory.errors import DataError

#: The leading columns of every quarantine table.
COLUMNS = ("_row", "_rule", "_column", "_value")
#: How many rules the too-many-quarantined line names.
TOP_RULES = 3


def split(table: pa.Table, failures: list[Failure]) -> tuple[pa.Table, np.ndarray]:
    """``table`` without the rows of ``failures`` (order kept), and those rows' positions, ascending.

    Returns ``table`` itself when nothing failed.
    """
    bad = np.unique(np.fromiter((f.row for f in failures), dtype=np.int64, count=len(failures)))
    if len(bad) == 0:
        return table, bad
    keep = np.ones(table.num_rows, dtype=bool)
    keep[bad] = False
    return table.filter(pa.array(keep)), bad


def by_rule(failures: list[Failure]) -> dict[str, int]:
    """Rule -> rows that broke it, the most broken first (ties by name)."""
    counts = Counter(f.rule for f in failures)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def quarantine_table(table: pa.Table, failures: list[Failure], pii: dict[str, str] | None = None,
                     key: bytes | None = None) -> pa.Table:
    """The quarantine table of ``failures`` (see the module docstring), pii hashed or dropped.

    Args:
        table: the source's table the failures' ``row`` positions point into.
        failures: ``factory.data.curation.columns.validate``'s result.
        pii: column -> ``hash`` or ``drop`` (``data.curation.columns.<c>.pii``).
        key: the HMAC key (``factory.data.curation.pii.load_key``); needed when a hashed
            column is present.

    Returns:
        A table with ``COLUMNS`` first, then ``table``'s columns (dropped pii columns left out);
        no rows when ``failures`` is empty.
    """
    pii = pii or {}
    rows = pa.array([f.row for f in failures], type=pa.int64())
    values = [_value_text(f, pii, key) for f in failures]
    head = pa.table({"_row": rows,
                     "_rule": pa.array([f.rule for f in failures], type=pa.string()),
                     "_column": pa.array([", ".join(f.columns) for f in failures], type=pa.string()),
                     "_value": pa.array(values, type=pa.string())})
    body = table.take(rows)
    if pii:
        from factory.data.curation import pii as pii_step

        body = pii_step.apply(body, {c: a for c, a in pii.items() if c in body.column_names}, key)
    clashing = [c for c in body.column_names if c in COLUMNS]
    if clashing:  # a source column named like ours: keep both, the source's renamed
        body = body.rename_columns([f"{c}_source" if c in COLUMNS else c for c in body.column_names])
    for name in body.column_names:
        head = head.append_column(body.schema.field(name), body.column(name))
    return head


def _value_text(failure: Failure, pii: dict[str, str], key: bytes | None) -> str | None:
    """The failing value(s) as text; a pii column's as its HMAC, or null when the column is dropped."""
    parts = []
    for column, value in zip(failure.columns, failure.values):
        action = pii.get(column)
        if value is None:
            parts.append(None)
        elif action == "drop":
            parts.append(None)
        elif action == "hash":
            from factory.data.curation import pii as pii_step

            parts.append(pii_step.hash_value(value, key))
        else:
            parts.append(str(value))
    if len(parts) == 1:
        return parts[0]
    return ", ".join("null" if p is None else p for p in parts)


def check_share(report: dict, max_quarantine: float, path: str | Path | None) -> None:
    """Raise ``DataError`` when more than ``max_quarantine`` of the rows were quarantined.

    The line names the share, the limit, the most broken rules and the quarantine file, e.g.
    ``data.curation.max_quarantine: 12.0% of 500 rows quarantined (limit 5.0%): amount:
    in_range(0, 100) 58, channel: isin([...]) 2; rows in /data/quarantine/3f9a....parquet``.
    """
    rows, quarantined = report["rows_in"], report["quarantined"]
    if rows == 0 or quarantined / rows <= max_quarantine:
        return
    top = list(report["by_rule"].items())
    named = ", ".join(f"{rule} {n}" for rule, n in top[:TOP_RULES])
    more = f" and {len(top) - TOP_RULES} more rules" if len(top) > TOP_RULES else ""
    raise DataError(f"data.curation.max_quarantine: {quarantined / rows:.1%} of {rows} rows quarantined "
                    f"(limit {max_quarantine:.1%}): {named}{more}; rows in {path}")


def file_name(quarantine: pa.Table, source_fingerprint: str, classification: str, length: int = 16) -> str:
    """``quarantine/<id>.parquet``: ``<id>`` a hash of the source, the classification and the table itself.

    Named by content, not by the source alone: two configs curating one source with other
    rules, pii tags or classification (encrypted or not) never share a file, so a run's
    run.json keeps pointing at the rows it quarantined; the same config names the same file.
    """
    from factory.data.fingerprint import table_fingerprint

    text = f"{source_fingerprint}\n{classification}\n{table_fingerprint(quarantine)}"
    return f"quarantine/{hashlib.sha256(text.encode()).hexdigest()[:length]}.parquet"


def write(quarantine: pa.Table, path: str | Path, key: bytes | None = None) -> Path:
    """Write ``quarantine`` to ``path`` as Parquet, atomically; encrypted with ``key`` (restricted data)."""
    from factory.governance import encryption

    return encryption.write_parquet(quarantine, path, key)
