"""A window of traffic, read as a stream of record batches: never the whole log in memory.

Sources: a request-log directory (``<serving_dir>/<model>/requests``: closed periods plus the
``_parts`` flushes no closed period covers yet, the rule of
``factory.serving.request_log_files.log_files``), any directory of Parquet/CSV files, one
Parquet or CSV file, or a glob. A window on ``time`` (``parse_window``) is a pyarrow.dataset
filter: row groups outside it are skipped by their statistics, not read.

Window syntax (``window=``):
    all                       every row
    last_<N><m|h|d|w>         the last N minutes, hours, days or weeks up to now (``last_24h``, ``last_7d``)
    A..B                      from A (inclusive) to B (exclusive); either side may be empty (open).
                              A date (``2026-12-01``) means its midnight UTC; a date as B means
                              the END of that day, so ``2026-12-01..2026-12-01`` is that one day.
                              Times are ISO 8601 (``2026-12-01T06:00``), UTC unless an offset is given.
"""
from __future__ import annotations

import glob as globbing
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from factory.data.sources.files import FORMATS
from factory.errors import DataError

CSV, PARQUET = FORMATS
TIME = "time"
_LAST = re.compile(r"last_(\d+)(m|h|d|w)")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_SUFFIXES = {f".{PARQUET}": PARQUET, ".pq": PARQUET, f".{CSV}": CSV}


def parse_window(text: str, now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
    """``(start, end)`` (timezone-aware UTC, None = open) of a window (see the module docstring).

    Raises:
        DataError: naming the value and the accepted forms.
    """
    text = str(text).strip()
    now = now or datetime.now(timezone.utc)
    if text in ("all", ""):
        return None, None
    match = _LAST.fullmatch(text)
    if match:
        amount = int(match.group(1))
        if amount <= 0:
            raise DataError(f"window={text!r}: the length must be positive")
        return now - timedelta(**{_UNITS[match.group(2)]: amount}), now
    if ".." in text:
        first, _, second = text.partition("..")
        start, end = _instant(first, text, False), _instant(second, text, True)
        if start is not None and end is not None and end <= start:
            raise DataError(f"window={text!r}: the end is not after the start")
        return start, end
    raise DataError(f"window={text!r}: unknown window; use all, last_<N><m|h|d|w> (last_24h, last_7d) "
                    "or START..END (2026-12-01..2026-12-02, 2026-12-01T06:00..)")


def _instant(part: str, text: str, is_end: bool) -> datetime | None:
    part = part.strip()
    if not part:
        return None
    try:
        if len(part) == 10:  # a date: its midnight, or (as an end) the next midnight
            day = date.fromisoformat(part)
            start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
            return start + timedelta(days=1) if is_end else start
        moment = datetime.fromisoformat(part.replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"window={text!r}: {part!r} is not a date (2026-12-01) or an ISO time "
                        "(2026-12-01T06:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def source_files(source: str | Path) -> list[Path]:
    """The Parquet and CSV files a source names (see the module docstring), in name order.

    Raises:
        DataError: nothing readable there, naming the source.
    """
    from factory.serving.request_log_files import log_files

    path = Path(source)
    if path.is_dir():
        found = log_files(path) + sorted(p for p in path.glob(f"*.{CSV}") if not p.name.startswith((".", "_")))
    elif path.is_file():
        found = [path]
    elif globbing.has_magic(str(source)):
        found = sorted(Path(p) for p in globbing.glob(str(source)) if Path(p).is_file())
    else:
        raise DataError(f"{source}: no such file or directory")
    found = [p for p in found if _format(p)]
    if not found:
        raise DataError(f"{source}: no Parquet or CSV files")
    return found


def _format(path: Path) -> str | None:
    name = path.name.lower().removesuffix(".gz")
    return _SUFFIXES.get(Path(name).suffix)


def iter_batches(source, *, start: datetime | None = None, end: datetime | None = None,
                 columns: list[str] | None = None, batch_rows: int = 65_536) -> Iterator:
    """Stream the rows of ``source`` with ``start <= time < end`` as ``pyarrow.RecordBatch``es.

    Args:
        source: a request-log directory, a directory, a Parquet/CSV file or a glob (or a list of files).
        start, end: the window on the ``time`` column (None: open); needs a ``time`` column.
        columns: the columns to read; those absent from every file are left out (a feature
            the log excludes), so a batch may lack some.
        batch_rows: the most rows per batch.

    Raises:
        DataError: no files; a window on a source without ``time``.
    """
    import pyarrow.dataset as ds

    paths = list(map(Path, source)) if isinstance(source, (list, tuple)) else source_files(source)
    for fmt in (PARQUET, CSV):
        chosen = [str(p) for p in paths if _format(p) == fmt]
        if not chosen:
            continue
        dataset = _dataset(chosen, fmt)
        names = dataset.schema.names
        if (start is not None or end is not None) and TIME not in names:
            raise DataError(f"{source}: a time window needs a {TIME!r} column; the {fmt} files have "
                            f"{', '.join(names[:12])}")
        wanted = None if columns is None else [c for c in columns if c in names]
        yield from dataset.to_batches(columns=wanted, filter=_time_filter(dataset.schema, start, end),
                                      batch_size=batch_rows)


def _dataset(paths: list[str], fmt: str):
    """One dataset over ``paths`` with their schemas unified (a log's prob_<label> columns may differ)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    if fmt == CSV:
        return ds.dataset(paths, format=CSV)
    for attempt in range(5):  # a part compacted away between listing and opening: list it again
        try:
            schemas = [ds.dataset(p, format=PARQUET).schema for p in paths]
            return ds.dataset(paths, format=PARQUET, schema=pa.unify_schemas(schemas, promote_options="permissive"))
        except FileNotFoundError:
            if attempt == 4:
                raise
            directory = Path(paths[0]).parent
            directory = directory.parent if directory.name == "_parts" else directory
            paths = [str(p) for p in source_files(directory) if _format(p) == PARQUET]
    raise AssertionError("unreachable")


def _time_filter(schema, start: datetime | None, end: datetime | None):
    import pyarrow as pa
    import pyarrow.dataset as ds

    if start is None and end is None:
        return None
    kind = schema.field(TIME).type
    if not pa.types.is_timestamp(kind):
        kind = pa.timestamp("us", tz="UTC")  # a CSV's times parsed as text: compare as timestamps
    field = ds.field(TIME).cast(kind) if schema.field(TIME).type != kind else ds.field(TIME)
    expression = None
    for bound, op in ((start, "ge"), (end, "lt")):
        if bound is None:
            continue
        value = pa.scalar(bound.astimezone(timezone.utc) if kind.tz else bound.replace(tzinfo=None), type=kind)
        term = field >= value if op == "ge" else field < value
        expression = term if expression is None else expression & term
    return expression
