"""The request log: every scored row to Parquet, written off the request path.

``RequestLog.append`` only queues the request's arrays; a writer thread writes them in
batches (``flush_rows`` rows or ``flush_interval_s``, whichever comes first). Each flush is
one complete Parquet file, written under a temporary name and renamed, so a crash (even
``kill -9``) loses at most the batch not yet flushed and never leaves a half file where a
reader looks. (One ``ParquetWriter`` per period with a row group per flush would make fewer
files, but its footer is written only at close: a crash would lose the whole open file.)

Rotation compacts those flushes: when a period's files pass ``rotate_mb`` or
``rotate_minutes`` (and at ``close()``), they are copied into one file, renamed into
place, and then deleted. ``factory.serving.request_log_files`` has the layout, the row
schema and ``read_request_log``.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from factory import files
from factory.errors import FactoryError
from factory.serving.request_log_files import (PARTS, atomic_write, atomic_write_bytes, kind,  # noqa: F401
                                               log_dir, log_files, parquet_bytes, read_request_log,
                                               rows_table, write_options)  # the log's API in one place

log = logging.getLogger(__name__)

RESERVED = ("request_id", "row", "time", "model", "version", "prediction", "score")
_KINDS = dict.fromkeys("biuf", "n")  # as request_log_files.kind: numbers -> "n", anything else "s"


def check_features(features: Iterable[str]) -> None:
    """Raise FactoryError if a feature's name is one of the log's own columns."""
    clash = [name for name in features if name in RESERVED or name.startswith("prob_")]
    if clash:
        raise FactoryError(f"request log: feature column(s) {clash} clash with the log's own columns "
                           f"{list(RESERVED)} / prob_*; rename them or add them to log.exclude")


class RequestLog:
    """A writer thread appending scored rows to Parquet files in ``directory``.

    Args:
        directory: the model's request-log folder (``log_dir(serving_dir, name)``).
        exclude: feature columns never written (identifiers, PII): dropped in ``append``.
        flush_rows: rows buffered before a write; a crash loses at most these.
        flush_interval_s: ... or the longest a row waits to be written.
        rotate_mb: a period's flushed files are compacted into one past this size ...
        rotate_minutes: ... or this age.
    """

    def __init__(self, directory: str | os.PathLike, *, exclude: Iterable[str] = (), flush_rows: int = 2048,
                 flush_interval_s: float = 1.0, rotate_mb: float = 64, rotate_minutes: float = 60):
        self.directory = Path(directory)
        (self.directory / PARTS).mkdir(parents=True, exist_ok=True)
        self.exclude = frozenset(exclude)
        self.flush_rows = max(1, int(flush_rows))
        self.flush_interval_s = float(flush_interval_s)
        self.rotate_bytes = float(rotate_mb) * 2**20
        self.rotate_s = float(rotate_minutes) * 60
        self.written_rows = 0  # rows in complete files (tests and metrics read these)
        self.dropped_rows = 0  # rows a failed write lost (logged)
        started = files.utc_now()
        self._prefix = f"{started:%Y%m%dT%H%M%S%f}Z-pid{os.getpid()}"
        self._period = 0
        self._parts: list[Path] = []   # the open period's flushed files
        self._period_bytes = 0
        self._period_started = 0.0
        self._schema = None            # the open period's schema: a new schema opens a new period
        # Requests wait in a plain list; the writer wakes when flush_rows are there, at the oldest row's
        # deadline, or at close -- not per request: a wake-up per request cost the event loop a GIL
        # hand-off (and on busy cores a context switch) each time.
        self._pending: list[dict] = []
        self._pending_rows = 0
        self._oldest = 0.0              # when the oldest pending row arrived (monotonic)
        self._wake = threading.Event()
        self._checked: Any = None  # the feature names last checked against the log's own columns
        self._closed = False
        self._lock = threading.Lock()
        # Now, not in the first flush: pyarrow.parquet's import, and pandas' (pyarrow's first conversion from NumPy
        # imports it): an import under load holds the GIL ~1 s, and every request waits. A tiny table, in memory.
        parquet_bytes(rows_table([{"request_id": "warm-up", "model": "", "version": 0, "time": 0,
                                   "features": {"n": np.zeros(1), "s": np.array([None], dtype=object)},
                                   "prediction": np.array(["0"], dtype=object), "score": np.zeros(1),
                                   "probabilities": {}}]))
        self._writer = threading.Thread(target=self._run, name="factory-request-log", daemon=True)
        self._writer.start()

    @classmethod
    def from_config(cls, log_cfg: Mapping[str, Any], serving_dir: str | os.PathLike, model_name: str) -> "RequestLog":
        """A ``RequestLog`` from conf/serve.yaml's ``log`` section."""
        return cls(log_dir(serving_dir, model_name), exclude=log_cfg.get("exclude") or (),
                   flush_rows=log_cfg.get("flush_rows", 2048), flush_interval_s=log_cfg.get("flush_interval_s", 1.0),
                   rotate_mb=log_cfg.get("rotate_mb", 64), rotate_minutes=log_cfg.get("rotate_minutes", 60))

    def append(self, *, request_id: str, model: str, version: int, features: Mapping[str, np.ndarray],
               prediction: np.ndarray, score: np.ndarray, probabilities: Mapping[str, np.ndarray] | None = None,
               when: datetime | None = None) -> None:
        """Queue one request's scored rows (cheap: the writer thread converts and writes them).

        Args:
            features: the raw feature columns as scored (one array per column, one length).
            prediction, score: one value per row.
            probabilities: ``{class label: per-row probability}`` for multiclass models.
            when: the scoring time (default now, UTC).
        """
        exclude = self.exclude
        kept = {name: values if isinstance(values, np.ndarray) else np.asarray(values)
                for name, values in features.items() if name not in exclude}
        if kept.keys() != self._checked:  # checked once per set of columns: this runs on the request path
            check_features(kept)
            self._checked = kept.keys()
        entry = {"request_id": str(request_id), "model": str(model), "version": int(version),
                 "time": int(when.timestamp() * 1_000_000) if when else time.time_ns() // 1000,
                 "features": kept, "prediction": np.asarray(prediction), "score": np.asarray(score, dtype=float),
                 "probabilities": {str(k): np.asarray(v, dtype=float) for k, v in (probabilities or {}).items()}}
        rows = len(entry["score"])
        with self._lock:
            if self._closed:
                log.warning("request log closed: %d row(s) of request %s not logged", rows, request_id)
                return
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending.append(entry)
            self._pending_rows += rows
            full = self._pending_rows >= self.flush_rows
        if full:
            self._wake.set()

    def close(self, timeout: float | None = None) -> None:
        """Write every queued row, compact the open period, and stop the writer (idempotent)."""
        with self._lock:
            self._closed = True
        self._wake.set()
        self._writer.join(timeout)

    # -- the writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._lock:
                wait = self.flush_interval_s - (time.monotonic() - self._oldest) if self._pending \
                    else self.flush_interval_s
            if wait > 0:
                self._wake.wait(max(wait, 0.001))
            self._wake.clear()
            with self._lock:  # take the whole batch if it is due (full, old enough, or closing)
                stop = self._closed
                due = self._pending and (stop or self._pending_rows >= self.flush_rows
                                         or time.monotonic() - self._oldest >= self.flush_interval_s)
                if due:
                    buffer, oldest, self._pending, self._pending_rows = self._pending, self._oldest, [], 0
            if due:
                self._write_due(buffer, oldest, stop)
            if stop:
                self._guarded(self._rotate)
                return
            self._rotate_if_due()

    def _rotate_if_due(self) -> None:
        if self._parts and (self._period_bytes >= self.rotate_bytes
                            or time.monotonic() - self._period_started >= self.rotate_s):
            self._guarded(self._rotate)

    def _write_due(self, buffer: list[dict], oldest: float, stop: bool) -> None:
        """One file per ``flush_rows`` rows of ``buffer`` (as if each flush had been taken on time); the
        rest too if it is old enough or the log is closing, else back in front of the pending rows."""
        start = count = 0
        for i, entry in enumerate(buffer):
            count += len(entry["score"])
            if count >= self.flush_rows:
                self._guarded(self._flush, buffer[start:i + 1], count)
                self._rotate_if_due()
                start, count = i + 1, 0
        if count and (stop or time.monotonic() - oldest >= self.flush_interval_s):
            self._guarded(self._flush, buffer[start:], count)
        elif count:
            with self._lock:
                self._pending[:0] = buffer[start:]
                self._pending_rows += count
                self._oldest = oldest

    def _guarded(self, step, *args) -> None:
        try:
            step(*args)
        except Exception as error:  # a full disk must not stop serving; say what was lost
            lost = args[1] if len(args) > 1 else 0
            self.dropped_rows += lost
            log.error("request log: %s failed in %s (%d row(s) lost): %s", step.__name__.strip("_"),
                      self.directory, lost, error)

    def _flush(self, entries: list[dict], rows: int) -> None:
        groups: list[list[dict]] = []
        for entry in entries:  # consecutive requests of one shape form one table (a reload may change it)
            features = entry["features"]  # (the key is built in C: per request, a Python loop here was most of a flush)
            shape = (tuple(features), tuple([_KINDS.get(v.dtype.kind, "s") for v in features.values()]),
                     tuple(entry["probabilities"]), kind(entry["prediction"]))
            if groups and groups[-1][0] == shape:
                groups[-1][1].append(entry)
            else:
                groups.append((shape, [entry]))
        for _, group in groups:
            table = rows_table(group)
            if self._schema is not None and not table.schema.equals(self._schema):
                self._rotate()
            self._write_part(table)

    def _write_part(self, table) -> None:
        if not self._parts:
            self._period += 1
            self._period_started = time.monotonic()
            self._schema = table.schema
        path = self.directory / PARTS / f"{self._stem()}-part{len(self._parts) + 1:05d}.parquet"
        data = parquet_bytes(table)  # in memory first: few system calls, so few GIL hand-offs, per flush
        atomic_write_bytes(path, data)
        self._parts.append(path)
        self._period_bytes += data.size
        self.written_rows += table.num_rows

    def _stem(self) -> str:
        return f"{self._prefix}-{self._period:04d}"

    def _rotate(self) -> None:
        """Compact the open period's parts into ``<stem>.parquet`` (rename first, then delete the parts)."""
        import pyarrow.parquet as pq

        if not self._parts:
            return
        final = self.directory / f"{self._stem()}.parquet"
        parts, self._parts, self._period_bytes, schema, self._schema = self._parts, [], 0, self._schema, None
        # Whatever fails below, the parts stay complete and readable; the next flush opens a new period.
        if len(parts) == 1:
            os.replace(parts[0], final)
            return

        def write(tmp):
            with pq.ParquetWriter(tmp, schema, **write_options(schema)) as writer:
                for part in parts:  # one part in memory at a time
                    writer.write_table(pq.read_table(part))
        atomic_write(final, write)
        for part in parts:  # after the rename: a crash here leaves copies read_request_log skips
            part.unlink(missing_ok=True)


def outcome(out: np.ndarray, task: str, labels: list) -> tuple[np.ndarray, np.ndarray, dict]:
    """A model's outputs as the log records them: ``(prediction, score, probabilities)``.

    As ``/predict`` answers: binary ``out`` is P(class 1), the prediction its label at 0.5;
    multiclass ``out`` is ``(N, C)``, the prediction the likeliest label, the score its
    probability, and every class's probability kept; regression values are both.
    """
    if task == "regression":
        return out, out, {}
    names = np.asarray([str(label) for label in labels], dtype=object)
    if task == "binary":
        return names[(out >= 0.5).astype(np.int64)], out, {}
    best = out.argmax(axis=1)
    return names[best], out[np.arange(len(out)), best], {name: out[:, i] for i, name in enumerate(names)}


class RequestLogHook:
    """The server's ``after_score`` hook: each scored request's rows to its model's ``RequestLog``."""

    def __init__(self, log_cfg: Mapping[str, Any], serving_dir: str | os.PathLike):
        self.log_cfg, self.serving_dir = log_cfg, serving_dir
        self.logs: dict[str, RequestLog] = {}

    def log_for(self, name: str) -> RequestLog:
        """The log of model ``name``: one per name, so a reload of the stage keeps writing to the same folder."""
        log = self.logs.get(name)
        if log is None:
            log = self.logs[name] = RequestLog.from_config(self.log_cfg, self.serving_dir, name)
        return log

    def __call__(self, request_id: str, served: Any, columns: Mapping[str, np.ndarray], out: np.ndarray) -> None:
        log = self.log_for(served.name)
        prediction, score, probabilities = outcome(out, served.task, served.class_labels)
        log.append(request_id=request_id, model=served.name, version=served.version,
                   features={name: columns[name] for name in served.features}, prediction=prediction,
                   score=score, probabilities=probabilities)

    def close(self) -> None:
        for log in self.logs.values():
            log.close()


def install(app: Any, cfg: Any) -> None:
    """Log every row ``app`` scores when ``cfg.log.enabled`` (after scoring: never a rejected request).

    The log opens with the app (so a bad serving_dir fails at start-up, and a clash of a
    feature's name with the log's columns is named then); ``close`` joins ``app.state.closers``.
    """
    if not cfg.log.enabled:
        return
    hook = RequestLogHook(cfg.log, cfg.serving_dir)
    served = app.state.holder.current
    check_features([f for f in served.features if f not in set(cfg.log.exclude or ())])
    hook.logs[served.name] = RequestLog.from_config(cfg.log, cfg.serving_dir, served.name)
    app.state.request_log = hook  # a language model's generations are logged through it too (serving.generation)
    app.state.after_score.append(hook)
    app.state.closers.append(hook.close)
