"""What batch scoring reads: files found from a path, glob or directory, streamed in Arrow record batches.

Each file is its own ``pyarrow.dataset`` (its rows numbered within it, so a bad value names the
file and row), read ahead in background threads while the model scores the batch before.
Features are checked and converted per batch (``feature_columns``): numbers as float64 with NaN
for missing, categories as strings with ``""`` for missing, the way the ONNX graph takes them.
"""
from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from factory.errors import DataError

#: File suffixes read as each format (``.csv.gz`` and friends: Arrow decompresses by suffix).
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".parq": "parquet", ".csv": "csv", ".tsv": "csv",
           ".arrow": "ipc", ".feather": "ipc", ".ipc": "ipc"}
COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")
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
        dataset = _dataset(path, kind, kinds, text_numbers=True)  # names only: a bad cell is found when read
        stat = path.stat()
        absent = [c for c in features if c not in dataset.schema.names]
        if absent:
            raise DataError(f"{path}: lacks the feature column(s) the model reads: {', '.join(map(repr, absent))}")
        rows = dataset.count_rows() if kind != "csv" else None  # metadata only: no data read
        opened.append(InputFile(path, kind, stat.st_size, stat.st_mtime_ns, rows, dataset.schema.names))
    return opened


def fingerprint(files: list[InputFile]) -> str:
    """``sha256:<hex>`` over each file's path, size and mtime: cheap at any size (the content
    is not read twice), and it changes whenever a file is rewritten or replaced."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.path}\0{f.bytes}\0{f.mtime_ns}\n".encode())
    return f"sha256:{digest.hexdigest()}"


def batches(file: InputFile, kinds: dict[str, str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """``file``'s rows in order, in record batches of at most ``batch_rows``; read ahead in threads.

    Raises:
        DataError: a value the file's format cannot read as its column's type (CSV: a numeric
            feature's cell that is not a number), naming the file, row and column.
    """
    done = 0
    try:
        dataset = _open(file.path, file.format, kinds)  # CSV: converts the first block already
        for batch in dataset.to_batches(batch_size=batch_rows, batch_readahead=2, fragment_readahead=1):
            done += batch.num_rows
            yield batch
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as e:
        _locate_unreadable(file, kinds, batch_rows, done, e)


def _dataset(path: Path, kind: str, kinds: dict[str, str], text_numbers: bool = False):
    """``_open``, its failure one line naming the file.

    Raises:
        DataError: not a file of its format.
    """
    try:
        return _open(path, kind, kinds, text_numbers)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as e:
        raise DataError(f"{path}: not a readable {kind} file ({_first_line(e)})") from None


def _open(path: Path, kind: str, kinds: dict[str, str], text_numbers: bool = False):
    """``path`` as a one-file ``pyarrow.dataset``. CSV reads numeric features as float64: type
    inference from the first block would take an integer column for int64 and fail on a later 3.5;
    ``text_numbers`` reads them as text instead, to find a bad cell."""
    import pyarrow.dataset as ds
    from pyarrow import csv

    if kind == "csv":
        numeric = {name: pa.string() if text_numbers else pa.float64()
                   for name, k in kinds.items() if k == "numeric"}
        delimiter = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
        file_format = ds.CsvFileFormat(parse_options=csv.ParseOptions(delimiter=delimiter),
                                       convert_options=csv.ConvertOptions(column_types=numeric,
                                                                          strings_can_be_null=text_numbers))
    else:
        file_format = kind
    return ds.dataset(path, format=file_format)


def _locate_unreadable(file: InputFile, kinds: dict[str, str], batch_rows: int, done: int, error: Exception):
    """Raise a DataError naming the row and column of a CSV cell Arrow could not convert (read again with
    numbers as text and checked batch by batch: the error path only), else Arrow's own reason."""
    if file.format == "csv":
        numeric = [n for n, k in kinds.items() if k == "numeric"]
        start = 0
        try:
            for batch in _open(file.path, "csv", kinds, text_numbers=True).to_batches(batch_size=batch_rows):
                feature_columns(batch, numeric, kinds, lambda i, s=start: f"{file.path}: row {s + i + 1}")
                start += batch.num_rows
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError):
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
            that is not numbers (a date), naming the file, row and column.
    """
    columns = {}
    for name in features:
        column = batch.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if kinds[name] != "numeric":
            columns[name] = pc.fill_null(pc.cast(column, pa.string()), "").to_numpy(zero_copy_only=False)
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
