"""A window of traffic, read as a stream of record batches: never the whole log in memory.

Sources: a request-log directory (``<serving_dir>/<model>/requests``: closed periods plus the
``_parts`` flushes no closed period covers yet, the rule of
``factory.serving.request_log_files.log_files``), any directory of Parquet/CSV files, one
Parquet or CSV file, or a glob. Read file by file, never through ``pyarrow.dataset`` (its readahead
held 3x more memory at 10M rows than at 1M); a window on ``time`` (``parse_window``) is applied per
batch, and row groups outside it are skipped by their statistics, not read.

Window syntax (``window=``):
    all                       every row
    last_<N><m|h|d|w>         the last N minutes, hours, days or weeks up to now (``last_24h``, ``last_7d``)
    A..B                      from A (inclusive) to B (exclusive); either side may be empty (open).
                              A date (``2026-12-01``) means its midnight UTC; a date as B
                              INCLUDES that whole day: ``2026-12-01..2026-12-01`` is one day,
                              ``2026-12-01..2026-12-02`` is two days.
                              Times are ISO 8601 (``2026-12-01T06:00``), UTC unless an offset is given.

A ``time`` column without a time zone (a CSV's ``2026-12-01 06:30:00``) is read as UTC: a bound
with an offset is converted to UTC before it is compared (``08:00+02:00`` is 06:00 there).
"""
from __future__ import annotations

import glob as globbing
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Iterator

from factory.data.sources.files import FORMATS
from factory.files import UTC, utc_now
from factory.errors import DataError
from factory.serving.request_log_files import PARTS

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
    now = now or utc_now()
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
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if is_end else start
        moment = datetime.fromisoformat(part.replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"window={text!r}: {part!r} is not a date (2026-12-01) or an ISO time "
                        "(2026-12-01T06:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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

    File by file (``ParquetFile.iter_batches`` per run of row groups, ``pyarrow.csv.open_csv``),
    only the requested columns, the window applied per batch with ``pyarrow.compute``; row groups
    whose ``time`` statistics lie outside the window are not read. Small batches (a log's
    2,048-row row groups, its small ``_parts`` files) are joined into ``batch_rows``-row ones.
    Memory: about two batches, whatever the log's size (``pyarrow.dataset``'s readahead held 3x
    more at 10M rows than at 1M). Every batch has one schema: the files' schemas unified (a log's
    ``prob_<label>`` columns may differ between files; a column a file lacks is null there).

    Args:
        source: a request-log directory, a directory, a Parquet/CSV file or a glob (or a list of files).
        start, end: the window on the ``time`` column (None: open); needs a ``time`` column.
        columns: the columns to read; those absent from every file are left out (a feature
            the log excludes), so a batch may lack some.
        batch_rows: the most rows per batch; batches of fewer than half of it are joined.

    Raises:
        DataError: no files; a window on a source without ``time``.
    """
    paths = list(map(Path, source)) if isinstance(source, (list, tuple)) else source_files(source)
    window = start is not None or end is not None
    for fmt in (PARQUET, CSV):
        chosen = [p for p in paths if _format(p) == fmt]
        if not chosen:
            continue
        chosen, schema = _parquet_schema(chosen) if fmt == PARQUET else (chosen, _csv_schema(chosen[0]))
        names = schema.names
        if window and TIME not in names:
            raise DataError(f"{source}: a time window needs a {TIME!r} column; the {fmt} files have "
                            f"{', '.join(names[:12])}")
        wanted = names if columns is None else [c for c in columns if c in names]
        target = _schema_of(schema, wanted)
        read = wanted + [TIME] if window and TIME not in wanted else wanted
        pieces = _parquet_pieces(chosen, _schema_of(schema, read), start, end, batch_rows) if fmt == PARQUET \
            else _csv_pieces(chosen, _schema_of(schema, read), batch_rows)
        yield from _coalesced(_windowed(pieces, target, start, end), batch_rows)


def _schema_of(schema, names: list[str]):
    import pyarrow as pa

    return pa.schema([schema.field(name) for name in names])


def _parquet_schema(paths: list[Path]):
    """``(paths, their schemas unified)``; a part compacted away between listing and reading: list again."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for attempt in range(5):
        try:
            return paths, pa.unify_schemas([pq.read_schema(p) for p in paths], promote_options="permissive")
        except FileNotFoundError:
            if attempt == 4:
                raise
            directory = paths[0].parent
            directory = directory.parent if directory.name == PARTS else directory
            paths = [p for p in source_files(directory) if _format(p) == PARQUET]
    raise AssertionError("unreachable")


def _csv_schema(path: Path):
    """The first CSV file's inferred schema: every CSV file is read with its types (as a dataset would)."""
    from pyarrow import csv

    return csv.open_csv(str(path)).schema


def _csv_pieces(paths: list[Path], schema, batch_rows: int) -> Iterator:
    from pyarrow import csv

    for path in paths:
        reader = csv.open_csv(str(path), read_options=csv.ReadOptions(block_size=max(batch_rows * 128, 1 << 20)),
                              convert_options=csv.ConvertOptions(
                                  column_types={f.name: f.type for f in schema}, include_columns=schema.names,
                                  include_missing_columns=True))
        yield from reader


def _parquet_pieces(paths: list[Path], schema, start, end, batch_rows: int) -> Iterator:
    """Each file's batches of the ``schema`` columns it has; a part compacted away since the listing
    is read from its period's file, past the rows its earlier parts gave."""
    import pyarrow.parquet as pq

    consumed: dict[str, int] = {}  # rows read from each period's parts
    for path in paths:
        stem, skip = None, 0
        if path.parent.name == PARTS:
            stem = path.stem.rsplit("-part", 1)[0]
            if stem in consumed and consumed[stem] < 0:
                continue  # its period's file was read whole already
        try:
            parquet = pq.ParquetFile(path)
        except FileNotFoundError:
            period = path.parent.parent / f"{stem}.parquet"
            if stem is None or not period.is_file():
                raise
            parquet, skip = pq.ParquetFile(period), consumed.get(stem, 0)
            consumed[stem] = -1
        if stem is not None and consumed.get(stem, 0) >= 0:
            consumed[stem] = consumed.get(stem, 0) + parquet.metadata.num_rows
        try:
            present = [name for name in schema.names if name in parquet.schema_arrow.names]
            yield from _row_group_runs(parquet, present, start, end, batch_rows, skip)
        finally:
            parquet.close()


def _row_group_runs(parquet, columns: list[str], start, end, batch_rows: int, skip: int = 0) -> Iterator:
    """A file's batches by one ``iter_batches`` per run of row groups holding at least ``batch_rows``
    rows (one reader over a whole file holds ever more memory: ``factory.serving.score_input``),
    skipping row groups before row ``skip`` and those whose ``time`` statistics miss the window."""
    meta, run, rows, offset = parquet.metadata, [], 0, 0
    first = None  # the run's first row in the file
    for group in range(meta.num_row_groups):
        size = meta.row_group(group).num_rows
        kept = offset + size > skip and _may_overlap(meta.row_group(group), start, end)
        if kept:
            first = offset if not run else first
            run.append(group)
            rows += size
        offset += size
        if run and (rows >= batch_rows or not kept or group == meta.num_row_groups - 1):
            drop = max(skip - first, 0)
            for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=run, columns=columns):
                if drop:
                    batch, drop = batch.slice(min(drop, batch.num_rows)), max(drop - batch.num_rows, 0)
                yield batch
            run, rows = [], 0


def _may_overlap(row_group, start, end) -> bool:
    """False only when the row group's ``time`` min/max statistics lie wholly outside ``[start, end)``."""
    if start is None and end is None:
        return True
    for index in range(row_group.num_columns):
        column = row_group.column(index)
        if column.path_in_schema != TIME:
            continue
        stats = column.statistics
        if stats is None or not stats.has_min_max:
            return True
        try:
            low, high = stats.min, stats.max
            if not isinstance(low, datetime) or not isinstance(high, datetime):
                return True
            naive = low.tzinfo is None
            return not ((start is not None and high < _as(start, naive)) or (end is not None and low >= _as(end, naive)))
        except (TypeError, ValueError, OverflowError):
            return True
    return True


def _as(bound: datetime, naive: bool) -> datetime:
    """``bound`` in UTC; naive (as a ``time`` column without a zone is read: UTC) when ``naive``."""
    bound = bound.astimezone(UTC)
    return bound.replace(tzinfo=None) if naive else bound


def _windowed(pieces: Iterator, target, start, end) -> Iterator:
    """``pieces`` with ``start <= time < end`` (``pyarrow.compute``), as ``target``'s columns and types."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for batch in pieces:
        if start is not None or end is not None:
            times = batch.column(TIME)
            if not pa.types.is_timestamp(times.type):
                times = times.cast(pa.timestamp("us", tz="UTC"))  # a CSV's times parsed as text
            keep = None
            for bound, compare in ((start, pc.greater_equal), (end, pc.less)):
                if bound is not None:
                    value = pa.scalar(_as(bound, times.type.tz is None), type=pa.timestamp("us", tz=times.type.tz))
                    term = compare(times, value.cast(times.type, safe=False) if times.type.unit != "us" else value)
                    keep = term if keep is None else pc.and_(keep, term)
            if not pc.all(keep).as_py() or keep.null_count:
                batch = batch.filter(keep)
        if batch.num_rows:
            yield _conformed(batch, target)


def _conformed(batch, target):
    """``batch`` with ``target``'s columns in its order and types (null where the file lacks one)."""
    import pyarrow as pa

    if batch.schema.equals(target):
        return batch
    arrays = []
    for field in target:
        index = batch.schema.get_field_index(field.name)
        if index < 0:
            arrays.append(pa.nulls(batch.num_rows, field.type))
        else:
            column = batch.column(index)
            arrays.append(column if column.type == field.type else column.cast(field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def _coalesced(batches: Iterator, batch_rows: int) -> Iterator:
    """``batches`` with the small ones (under half of ``batch_rows``: a log's 2,048-row row groups
    and ``_parts`` flushes, a file's last rows) joined into ``batch_rows``-row batches; a large one
    passes as it is, uncopied (cutting every batch to exactly ``batch_rows`` would copy them all
    once one file's last rows put the cuts out of step)."""
    import pyarrow as pa

    pending, rows = [], 0
    for batch in batches:
        if batch.num_rows >= batch_rows // 2:
            if pending:
                yield pa.concat_batches(pending)
                pending, rows = [], 0
            yield batch
            continue
        pending.append(batch)
        rows += batch.num_rows
        if rows >= batch_rows:
            joined = pa.concat_batches(pending)
            yield joined.slice(0, batch_rows)
            pending, rows = ([joined.slice(batch_rows)], rows - batch_rows) if rows > batch_rows else ([], 0)
    if pending:
        yield pa.concat_batches(pending)
