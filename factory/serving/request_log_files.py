"""The request log's files: their schema, names, atomic writes, and reading them back.

Layout under ``<serving_dir>/<model name>/requests/`` (``factory.serving.request_log`` writes it)::

    20261207T120000123456Z-pid4321-0001.parquet                    a closed period (complete)
    _parts/20261207T120000123456Z-pid4321-0002-part00007.parquet   flushes of the open period

Names carry the writing process's start time and pid, so ``workers=N`` never share a file.
Files are written under a dot-name ending ``.tmp`` and renamed: every ``*.parquet`` is whole.
A part whose period file exists is a copy left by a crash between the period's rename and
the parts' deletion; ``read_request_log`` skips it (pyarrow's dataset reader skips ``_parts``,
like any ``_``-prefixed folder, and so sees the closed periods only).

Row schema: ``request_id`` string, ``row`` int32 (position in its request), ``time``
timestamp[us, UTC], ``model`` string, ``version`` int64, each raw feature (numeric float64,
categorical string, missing as null) except ``log.exclude``, ``prediction`` (the label:
string, or float64 for regression), ``score`` float64, ``prob_<label>`` float64 (multiclass).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from factory.errors import FactoryError

PARTS = "_parts"


def log_dir(serving_dir: str | os.PathLike, model_name: str) -> Path:
    """Where ``model_name``'s request log lives: ``<serving_dir>/<model name>/requests``."""
    return Path(serving_dir) / model_name / "requests"


def monitoring_file(serving_dir: str | os.PathLike, model_name: str) -> Path:
    """The latest monitoring figures of ``model_name`` (Prometheus text): ``<serving_dir>/<model>/monitoring/drift.prom``.

    ``scripts/monitor.py`` writes it; the server appends its content to ``/metrics``.
    """
    return Path(serving_dir) / model_name / "monitoring" / "drift.prom"


def kind(values: np.ndarray) -> str:
    return "n" if values.dtype.kind in "biuf" else "s"


def _strings(values: np.ndarray):
    import pyarrow as pa

    try:
        return pa.array(values, type=pa.string(), from_pandas=True)  # None and NaN -> null
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([None if v is None or v != v else str(v) for v in values.tolist()], type=pa.string())


def _column(values: np.ndarray):
    import pyarrow as pa

    if values.dtype.kind in "iub":
        return pa.array(values.astype(np.int64))
    if values.dtype.kind == "f":
        return pa.array(values.astype(np.float64))
    return _strings(values)


def rows_table(entries: list[dict]):
    """One Arrow table from requests of one shape: numeric features float64, the rest strings.

    Per request, only list building in C (``zip``, comprehensions): the writer holds the GIL
    while it runs, and with one-row requests a flush is thousands of them.
    """
    import pyarrow as pa

    counts = np.fromiter((len(e["score"]) for e in entries), np.int64, len(entries))
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    which = np.repeat(np.arange(len(entries)), counts)  # each row's request
    first = entries[0]
    columns = {  # (no compute kernels: each call would hand the GIL to the event loop and wait to get it back)
        "request_id": pa.array(np.array([e["request_id"] for e in entries], dtype=object)[which], type=pa.string()),
        "row": pa.array((np.arange(total) - starts[which]).astype(np.int32)),
        "time": pa.array(np.fromiter((e["time"] for e in entries), np.int64, len(entries))[which],
                         type=pa.timestamp("us", tz="UTC")),
        "model": pa.array(np.array([e["model"] for e in entries], dtype=object)[which], type=pa.string()),
        "version": pa.array(np.fromiter((e["version"] for e in entries), np.int64, len(entries))[which]),
    }
    by_column = zip(*(e["features"].values() for e in entries))  # one tuple of arrays per feature
    for name, arrays in zip(first["features"], by_column):
        joined = np.concatenate(arrays)
        columns[name] = pa.array(joined.astype(np.float64, copy=False)) if kind(joined) == "n" else _strings(joined)
    columns["prediction"] = _column(np.concatenate([e["prediction"] for e in entries]))
    columns["score"] = pa.array(np.concatenate([e["score"] for e in entries]).astype(np.float64, copy=False))
    for label in first["probabilities"]:
        columns[f"prob_{label}"] = pa.array(np.concatenate([e["probabilities"][label] for e in entries]))
    return pa.table(columns)


def write_options(schema) -> dict:
    """``pq.write_table`` options for a log file: dictionary pages for the text columns (ids,
    labels, categoricals repeat) and min/max statistics for ``time`` and ``request_id`` (what a
    reader filters on); skipping them on numeric columns cuts the writer's time by about a third."""
    import pyarrow as pa

    return {"use_dictionary": [f.name for f in schema if pa.types.is_string(f.type)],
            "write_statistics": [name for name in ("time", "request_id") if name in schema.names]}


def atomic_write(path: Path, write) -> None:
    """``write(tmp)`` a dot-named temp file beside ``path``, fsync it, rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(str(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def parquet_bytes(table) -> bytes:
    """``table`` as a whole Parquet file in memory (``write_options``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **write_options(table.schema))
    return sink.getvalue()


def atomic_write_bytes(path: Path, data) -> None:
    """``data`` to a dot-named temp file beside ``path``, fsynced, renamed into place: five system
    calls (each one the writer thread gives the GIL away and must win it back from the event loop)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def log_files(directory: str | os.PathLike) -> list[Path]:
    """The complete files of a request log: closed periods, and flushes no closed period covers."""
    directory = Path(directory)
    closed = sorted(p for p in directory.glob("*.parquet") if not p.name.startswith("."))
    stems = {p.stem for p in closed}
    parts = sorted(p for p in (directory / PARTS).glob("*.parquet")
                   if not p.name.startswith(".") and p.stem.rsplit("-part", 1)[0] not in stems)
    return closed + parts


def read_request_log(directory: str | os.PathLike):
    """Every logged row under ``directory`` as one ``pyarrow.Table``, in time order.

    Safe while servers write: only complete files are read, and a file compacted away
    between listing and reading is found again under its period's name.

    Raises:
        FactoryError: ``directory`` holds no request log.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory = Path(directory)
    for attempt in range(5):
        files = log_files(directory)
        try:
            tables = [pq.read_table(p) for p in files]
            break
        except FileNotFoundError:
            if attempt == 4:
                raise
    if not tables:
        if not directory.is_dir():
            raise FactoryError(f"no request log at {directory}")
        return pa.table({})
    table = pa.concat_tables(tables, promote_options="default")
    return table.sort_by("time") if "time" in table.column_names else table
