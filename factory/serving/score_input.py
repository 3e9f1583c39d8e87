"""What batch scoring reads: files found from a path, glob or directory, streamed in Arrow record batches.

Each file is read on its own by Arrow's streaming reader for its format (its rows numbered within
it, so a bad value names the file and row), one row group or block at a time.
Features are checked and converted per batch (``feature_columns``): numbers as float64 with NaN
for missing, categories as strings with ``""`` for missing, the way the ONNX graph takes them.
A column of a type that cannot be read so (a list, a struct, a date for a number) is a ``DataError``
naming the file, column and type, never an Arrow traceback.
"""
from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from factory.errors import DataError

#: File suffixes read as each format (``.csv.gz`` and friends: Arrow decompresses by suffix).
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".parq": "parquet", ".csv": "csv", ".tsv": "csv",
           ".arrow": "ipc", ".arrows": "ipc", ".feather": "ipc", ".ipc": "ipc"}
COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")
#: What Arrow raises for a file or value it cannot read or convert (ArrowIOError is an OSError).
UNREADABLE = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError)
FINGERPRINT_METHOD = "sha256 over each file's path, size and mtime (not its content)"


@dataclass(frozen=True)
class InputFile:
    """One file to score: where, its format and what it held when scoring started."""

    path: Path
    format: str  # parquet, csv or ipc
    bytes: int
    mtime_ns: int
    rows: int | None = None  # known before reading for Parquet and IPC (file metadata); None for CSV
    columns: list[str] = field(default_factory=list)

    def record(self, rows: int) -> dict:
        return {"path": str(self.path), "format": self.format, "bytes": self.bytes, "rows": rows}


def find_files(spec: str | os.PathLike | list) -> list[Path]:
    """The files ``spec`` names: a file, a glob (``data/*.parquet``, ``**`` recursive), a directory
    (every readable file under it, hidden and ``_``-prefixed ones skipped), or a list of those; sorted.

    Raises:
        DataError: a path that does not exist, a glob or directory that holds no file to score,
            a file whose suffix is none of ``FORMATS``.
    """
    specs = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    if not specs:
        raise DataError("input: no file given")
    found: list[Path] = []
    for item in map(str, specs):
        if glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise DataError(f"input={item}: the glob matches no file")
            for match in matches:
                found += _under(Path(match)) if Path(match).is_dir() else [Path(match)]
        elif Path(item).is_dir():
            files = _under(Path(item))
            if not files:
                raise DataError(f"input={item}: the directory holds no Parquet, CSV or Arrow file")
            found += files
        elif Path(item).is_file():
            found.append(Path(item))
        else:
            raise DataError(f"input={item}: no such file or directory")
    for path in found:
        file_format(path)  # an unknown suffix answers before anything is read
    return sorted(dict.fromkeys(p.absolute() for p in found))


def _under(directory: Path) -> list[Path]:
    """Data files under ``directory``, skipping hidden and ``_``-prefixed names (``_SUCCESS``, ``.crc``)."""
    return sorted(p for p in directory.rglob("*") if p.is_file() and _known(p)
                  and not any(part.startswith((".", "_")) for part in p.relative_to(directory).parts))


def _known(path: Path) -> bool:
    try:
        file_format(path)
        return True
    except DataError:
        return False


def file_format(path: Path) -> str:
    """``parquet``, ``csv`` or ``ipc`` from the suffix (a compression suffix after it is allowed)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes.pop()
    kind = FORMATS.get(suffixes[-1]) if suffixes else None
    if kind is None:
        raise DataError(f"input: {path}: expected a Parquet, CSV or Arrow file ({', '.join(sorted(FORMATS))})")
    return kind


def open_files(paths: list[Path], features: list[str], kinds: dict[str, str]) -> list[InputFile]:
    """Each file's format, size, mtime, columns (and rows where its metadata says), checked to hold
    every feature, before any row is scored.

    Raises:
        DataError: an unreadable file, or one that lacks a feature column (named with the file).
    """
    opened = []
    for path in paths:
        kind = file_format(path)
        try:  # a footer or a first block: CSV numbers as text, so a bad cell is found (with its row) when read
            schema, rows, _ = _open(path, kind, kinds, text_numbers=True)
        except UNREADABLE as e:
            raise DataError(f"{path}: not a readable {kind} file ({_first_line(e)})") from None
        absent = [c for c in features if c not in schema.names]
        if absent:
            raise DataError(f"{path}: lacks the feature column(s) the model reads: {', '.join(map(repr, absent))}")
        stat = path.stat()
        opened.append(InputFile(path, kind, stat.st_size, stat.st_mtime_ns, rows, schema.names))
    return opened


def fingerprint(files: list[InputFile]) -> str:
    """``sha256:<hex>`` over each file's path, size and mtime: cheap at any size (the content
    is not read twice), and it changes whenever a file is rewritten or replaced."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.path}\0{f.bytes}\0{f.mtime_ns}\n".encode())
    return f"sha256:{digest.hexdigest()}"


def batches(file: InputFile, kinds: dict[str, str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """``file``'s rows in order, in record batches of at most ``batch_rows``, one at a time: memory
    holds a Parquet row group or a CSV block, whatever the file's size.

    Raises:
        DataError: a value the file's format cannot read as its column's type (CSV: a numeric
            feature's cell that is not a number), naming the file, row and column.
    """
    done = 0
    try:
        for batch in _open(file.path, file.format, kinds, batch_rows)[2]:
            done += batch.num_rows
            yield batch
    except UNREADABLE as e:
        _locate_unreadable(file, kinds, batch_rows, done, e)


def _open(path: Path, kind: str, kinds: dict[str, str], batch_rows: int = 65536,
          text_numbers: bool = False) -> tuple[pa.Schema, int | None, Iterator[pa.RecordBatch]]:
    """``(schema, rows if the file's metadata says, its batches)``, reading only a footer or a first block.

    Streaming readers, not ``pyarrow.dataset``: its scanner decoded a 4M-row Parquet file far ahead
    of a slower consumer (350 MB held), where ``iter_batches`` holds a row group or so. CSV reads numeric
    features as float64 (type inference from the first block would take an integer column for int64
    and fail on a later 3.5); ``text_numbers`` reads them as text instead, to find a bad cell.
    Categorical features are read as text: inferred, ``007`` would be the number 7, and a later
    ``A1`` would fail the read.
    """
    if kind == "parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        return parquet.schema_arrow, parquet.metadata.num_rows, _row_group_runs(parquet, batch_rows)
    if kind == "csv":
        from pyarrow import csv

        types = {name: pa.float64() if kind == "numeric" and not text_numbers else pa.string()
                 for name, kind in kinds.items()}
        tab = ".tsv" in [s.lower() for s in path.suffixes]
        block = min(max(batch_rows * 128, 1 << 20), 1 << 28)  # bytes: about batch_rows rows of ~128 bytes
        # use_threads=False: blocks parsed in parallel lose their row numbers, and a malformed
        # line's error then says no "Row #N" (seen under load); the model, not parsing, is the cost.
        reader = csv.open_csv(str(path), read_options=csv.ReadOptions(block_size=block, use_threads=False),
                              parse_options=csv.ParseOptions(delimiter="\t" if tab else ","),
                              # empty cells are missing in text columns too, as FileSource reads them for training
                              convert_options=csv.ConvertOptions(column_types=types, strings_can_be_null=True))
        return reader.schema, None, _sliced(reader, batch_rows)
    source = pa.memory_map(str(path))
    try:
        reader = pa.ipc.open_file(source)
        batches_ = (reader.get_batch(i) for i in range(reader.num_record_batches))
    except pa.ArrowInvalid:  # the stream format (.arrows) rather than the file format (Feather v2)
        reader = batches_ = pa.ipc.open_stream(source)
    return reader.schema, None, _sliced(batches_, batch_rows)


def _row_group_runs(parquet, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """A Parquet file's batches, read by one ``iter_batches`` per run of row groups holding at least
    ``batch_rows`` rows: one reader over the whole file held ever more memory (Arrow's allocations
    40 -> 104 MB over a 10M-row file); a reader per run stays at 10 MB, and is no slower."""
    meta, run, rows = parquet.metadata, [], 0
    for group in range(meta.num_row_groups):
        run.append(group)
        rows += meta.row_group(group).num_rows
        if rows >= batch_rows or group == meta.num_row_groups - 1:
            yield from parquet.iter_batches(batch_size=batch_rows, row_groups=run)
            run, rows = [], 0


def _sliced(batches_: Iterable[pa.RecordBatch], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Batches cut to at most ``batch_rows`` (zero-copy slices)."""
    for batch in batches_:
        for start in range(0, batch.num_rows, batch_rows):
            yield batch.slice(start, batch_rows)


def _locate_unreadable(file: InputFile, kinds: dict[str, str], batch_rows: int, done: int, error: Exception):
    """Raise a DataError naming the row and column of a CSV cell Arrow could not convert (read again with
    numbers as text and checked batch by batch: the error path only), else Arrow's own reason."""
    if file.format == "csv":
        numeric = [n for n, k in kinds.items() if k == "numeric"]
        start = 0
        try:
            for batch in _open(file.path, "csv", kinds, batch_rows, text_numbers=True)[2]:
                feature_columns(batch, numeric, kinds, lambda i, s=start: f"{file.path}: row {s + i + 1}")
                start += batch.num_rows
        except UNREADABLE:
            pass  # not a numeric feature: Arrow's reason below
    raise DataError(f"{file.path}: unreadable after row {done} ({_first_line(error)})") from None


def _first_line(error: Exception) -> str:
    """Arrow's reason without the layers of context it wraps round it (``Error creating dataset. ...:``)."""
    line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return line.rpartition("Invalid: ")[2] or line


def feature_columns(batch: pa.RecordBatch, features: list[str], kinds: dict[str, str],
                    where: Callable[[int], str]) -> dict[str, np.ndarray]:
    """The batch's features as the model's inputs: numeric -> float64 (N,) with NaN for missing,
    categorical -> object (N,) of str with ``""`` for missing.

    Args:
        where: row index in the batch -> ``"<file>: row <n>"``, for errors.

    Raises:
        DataError: a numeric feature holding text that is not a number, an infinity, or a type
            that is not numbers (a date), naming the file, row and column; a categorical feature
            of a type that has no text form (a list, a struct), naming its type.
    """
    columns = {}
    for name in features:
        column = batch.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if kinds[name] != "numeric":
            try:
                text = pc.cast(column, pa.string())
            except UNREADABLE:  # a list, struct or map (not implemented), binary that is not UTF-8 (invalid)
                raise DataError(f"{where(0)}: column '{name}' is {column.type}; the model reads it as text "
                                "(a category)") from None
            columns[name] = pc.fill_null(text, "").to_numpy(zero_copy_only=False)
            continue
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = _parsed(column, name, where)
        elif not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                  or pa.types.is_boolean(column.type) or pa.types.is_null(column.type)
                  or pa.types.is_decimal(column.type)):
            raise DataError(f"{where(0)}: column '{name}' is {column.type}; the model reads it as a number")
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)  # nulls -> NaN
        infinite = np.isinf(values)
        if infinite.any():
            i = int(infinite.argmax())
            raise DataError(f"{where(i)}: column '{name}' is {values[i]}; the model reads finite numbers "
                            "(or missing values)")
        columns[name] = values
    return columns


def _parsed(column: pa.Array, name: str, where: Callable[[int], str]) -> pa.Array:
    """A text column of numbers as float64; the first cell that is not one raises, naming its row."""
    column = pc.if_else(pc.equal(column, ""), pa.scalar(None, column.type), column)  # "" is missing, as in CSV
    try:
        return pc.cast(column, pa.float64())
    except pa.ArrowInvalid:
        pass
    for i, value in enumerate(column.to_pylist()):  # the error path only: find the first bad cell
        try:
            pc.cast(pa.array([value], pa.string()), pa.float64())
        except pa.ArrowInvalid:
            break
    else:
        i, value = 0, None
    raise DataError(f"{where(i)}: column '{name}' holds {str(value)[:40]!r}, not a number")
