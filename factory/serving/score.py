"""Batch scoring: a registered model over files or a data config's table, streamed to a Parquet directory.

    python scripts/score.py model=fraud_detection@production input='in/*.parquet' output=scored/today

The input is read in Arrow record batches (``score_input``), each batch scored and written as
it comes (``score_output``): memory stays flat at any size. The output directory holds Parquet
parts (the input's columns plus ``prediction``, ``score``, ``prob_<label>`` for multiclass and
``model_version``) and ``_score.json``, the manifest; it appears, complete, only when every row
is written. With the ONNX backend the hot path is Arrow -> NumPy -> ONNX Runtime -> Arrow, no pandas.

Example:
    >>> from factory import registry
    >>> from factory.serving.score import score_files
    >>> model = registry.load("fraud_detection@production", backend="onnx")
    >>> score_files(model, "in/*.parquet", "scored/today")["rows_per_s"]
"""
from __future__ import annotations

import contextlib
import functools
import os
import time
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa

from factory.errors import ConfigError, DataError
from factory.files import utc_stamp, write_json
from factory.serving.score_input import (FINGERPRINT_METHOD, batches, feature_columns, find_files, fingerprint,
                                         open_files)
from factory.serving.score_output import Parts, check_output, progress_bar
from factory.training import energy as energy_meter

#: The manifest, beside the parts; ``_``-prefixed so that Arrow, pandas and Spark read the directory
#: as a dataset of the parts alone (``pd.read_parquet(output)``), as they skip ``_SUCCESS``.
MANIFEST = "_score.json"
#: Columns scoring adds; an input column of the same name is kept as ``<name>_raw``.
VERSION_COLUMN = "model_version"


class Scorer:
    """A registered model's scoring of one record batch: checked features in, output columns out.

    With ONNX (``model.onnx.predict_columns``) the batch goes NumPy -> ONNX Runtime; otherwise
    through ``model.predict`` on the batch's feature columns (the PyTorch path, via pandas).

    Columns the model's data config tags ``pii`` are hashed (``FACTORY_PII_KEY``) or dropped first,
    as in training: the model scores what it was trained on and the output holds no raw PII.
    """

    def __init__(self, model):
        onnx = getattr(model, "onnx", None)
        self.fast = getattr(onnx, "predict_columns", None)
        self.backend = getattr(model, "backend", "onnx" if onnx is not None else "torch")  # onnx-int8 too
        if self.fast is not None:
            self.features, self.kinds = list(onnx.features), dict(onnx.kinds)
            self.task, self.labels = onnx.task, list(onnx.class_labels)
        else:
            schema = model.preprocessor.schema
            self.features, self.kinds = list(schema.features), dict(schema.features)
            self.task, self.labels = model.task, list(model.class_labels)
        self.model = model
        self.ref = model.version.ref
        from factory.data.curation import pii

        self.pii = pii.tagged(((getattr(model, "metadata", None) or {}).get("config") or {}).get("data"))
        self.pii_key = pii.load_key() if "hash" in self.pii.values() else None
        self.added = ["prediction", "score", *([f"prob_{label}" for label in self.labels]
                                               if self.task == "multiclass" else []), VERSION_COLUMN]
        self._version = pa.array([], pa.string())

    def __call__(self, batch: pa.RecordBatch, where) -> pa.RecordBatch:
        """``batch`` with its added columns; ``where(i)`` names row ``i`` for errors (``<file>: row <n>``)."""
        if self.pii:
            from factory.data.curation.pii import apply

            batch = apply(batch, self.pii, self.pii_key, strict=False)  # a file may lack a dropped column
        columns = feature_columns(batch, self.features, self.kinds, where)
        if self.fast is not None:
            added = added_columns(self.task, np.asarray(self.fast(columns)))
        else:
            scored = self.model.predict(pa.Table.from_batches([batch.select(self.features)]), pii=False)  # hashed above
            added = [pa.array(scored[name].to_numpy()) for name in self.added[:-1]]
        n = batch.num_rows
        if len(self._version) < n:  # one array of the ref, sliced per batch (no per-row Python objects)
            self._version = pa.array([self.ref] * n, pa.string())
        names = [f"{c}_raw" if c in self.added else c for c in batch.schema.names]
        return pa.RecordBatch.from_arrays([*batch.columns, *added, self._version.slice(0, n)],
                                          names=[*names, *self.added])


def added_columns(task: str, out: np.ndarray) -> list[pa.Array]:
    """``prediction``, ``score`` (and ``prob_<label>`` per class for multiclass) from the model's
    probabilities, as ``factory.models.predict.scored_frame`` writes them for every backend.

    Args:
        task: ``binary``, ``multiclass`` or ``regression``.
        out: ``(N,)`` P(class 1) or value; ``(N, C)`` class probabilities for multiclass.
    """
    if task == "multiclass":
        out = out.astype(np.float32, copy=False)
        return [pa.array(out.argmax(axis=1).astype(np.int64)), pa.array(out.max(axis=1)),
                *(pa.array(np.ascontiguousarray(out[:, i])) for i in range(out.shape[1]))]
    out = out.reshape(-1).astype(np.float32, copy=False)
    prediction = (out >= 0.5).astype(np.int64) if task == "binary" else out
    return [pa.array(prediction), pa.array(out)]


def score_files(model, inputs, output: str | os.PathLike, *, batch_rows: int = 65536,
                progress: bool | None = False, energy: Mapping | None = None) -> dict:
    """Score files (a path, glob, directory, or a list of them) with a loaded registered model.

    Args:
        model: what ``factory.registry.load(ref, backend=...)`` returns.
        inputs: Parquet, CSV (float64 numeric features) or Arrow files; see ``score_input.find_files``.
        output: a new (or empty) directory: Parquet parts and ``_score.json``.
        batch_rows: rows per record batch (model call, Parquet row group).
        progress: a progress bar on stderr; None: when stderr is a terminal.
        energy: an ``energy:`` node (conf/energy/): the manifest's ``energy`` then holds the
            scoring's kWh and kg CO2e (``factory.training.energy``); None: not measured.

    Returns:
        The manifest written as ``<output>/_score.json``.

    Raises:
        DataError: a missing input, an empty glob, a file lacking a feature, a value that is not a
            number or an infinity (naming the file, row and column), an existing output. Nothing is
            left at ``output`` then.
    """
    out = check_output(output)
    scorer = Scorer(model)
    files = open_files(find_files(inputs), scorer.features, scorer.kinds)
    given = [str(p) for p in inputs] if isinstance(inputs, (list, tuple)) else str(inputs)
    record = {"given": given, "files": [f.record(f.rows) for f in files], "fingerprint": fingerprint(files),
              "fingerprint_method": FINGERPRINT_METHOD}

    def stream() -> Iterator[tuple[pa.RecordBatch, object]]:
        for i, f in enumerate(files):
            rows = 0
            for batch in batches(f, scorer.kinds, batch_rows):
                yield batch, lambda r, f=f, s=rows: f"{f.path}: row {s + r + 1}"
                rows += batch.num_rows
            record["files"][i]["rows"] = rows

    total = sum(f.rows for f in files) if all(f.rows is not None for f in files) else None
    return _score(scorer, stream(), out, record, total, batch_rows, progress, energy)


def score_table(model, table: pa.Table, output: str | os.PathLike, *, source: dict | None = None,
                batch_rows: int = 65536, progress: bool | None = False, energy: Mapping | None = None) -> dict:
    """Score an Arrow table already in memory (a data config's source table) as ``score_files`` does.

    Args:
        source: what the manifest records of where the table came from (its data config).

    Returns:
        The manifest; its input fingerprint is the table's content hash (``table_fingerprint``).
    """
    from factory.data.fingerprint import table_fingerprint

    out = check_output(output)
    scorer = Scorer(model)
    absent = [c for c in scorer.features if c not in table.column_names]
    label = (source or {}).get("name", "table")
    if absent:
        raise DataError(f"{label}: lacks the feature column(s) the model reads: {', '.join(map(repr, absent))}")
    record = {**(source or {}), "rows": table.num_rows, "fingerprint": f"sha256:{table_fingerprint(table)}",
              "fingerprint_method": "sha256 of the table's content (factory.data.fingerprint)"}

    def stream():
        rows = 0
        for batch in table.to_batches(max_chunksize=batch_rows):
            yield batch, lambda r, s=rows: f"{label}: row {s + r + 1}"
            rows += batch.num_rows

    return _score(scorer, stream(), out, record, table.num_rows, batch_rows, progress, energy)


def _emits_lineage(score):
    """``score.<model>`` lineage events around a scoring: the model version and its input in, the score table out."""
    @functools.wraps(score)
    def scored(scorer: Scorer, stream: Iterable, output: Path, record: dict, *args, **kwargs) -> dict:
        from factory.governance import lineage

        version = scorer.model.version
        sha = ((getattr(scorer.model, "metadata", None) or {}).get("checkpoint") or {}).get("sha256")
        inputs = [lineage.model_version(version.name, version.version, sha)]
        if record.get("files"):  # fingerprinted as the manifest does: by path, size and mtime
            inputs += [lineage.Dataset(str(Path(f["path"]).absolute()), lineage.FILES, rows=f.get("rows"),
                                       version=lineage.fingerprint([Path(f["path"])], content=False))
                       for f in record["files"]]
        else:
            name = str(record.get("name", "table")).removeprefix("data=")
            inputs.append(lineage.source(name, record.get("fingerprint"), rows=record.get("rows")))
        with lineage.job(f"score.{version.name}", inputs=inputs) as event:
            manifest = score(scorer, stream, output, record, *args, **kwargs)
            event.outputs.append(lineage.file(output, rows=manifest["rows"]))
        return manifest

    return scored


@_emits_lineage
def _score(scorer: Scorer, stream: Iterable, output: Path, record: dict, total: int | None,
           batch_rows: int, progress: bool | None, energy: Mapping | None = None) -> dict:
    """Score ``stream`` of (batch, row namer) into ``output``; the manifest."""
    from factory.rundir.provenance import factory_version

    meter = energy_meter.meter_for(energy)
    started, clock, rows = utc_stamp("milliseconds"), time.perf_counter(), 0
    bar = progress_bar(total, progress)
    with contextlib.ExitStack() as undo, _sigterm_deferred() as sigterm, Parts(output) as parts:
        if meter is not None:
            undo.callback(meter.cancel)  # a scoring that fails records nothing; its tracker ends with it
        task = bar.add_task(f"scoring {scorer.ref}", total=total) if bar else None
        if bar:
            bar.start()
        try:
            for batch, where in stream:
                parts.write(scorer(batch, where))
                sigterm.check()  # between batches, never inside ONNX Runtime or Arrow
                rows += batch.num_rows
                if bar:
                    bar.update(task, completed=rows)
            parts.close()
            sigterm.check()
        finally:
            if bar:
                bar.stop()
        seconds = time.perf_counter() - clock
        version = scorer.model.version
        manifest = {"model": {"name": version.name, "version": version.version, "stage": version.stage,
                              "ref": scorer.ref},
                    "backend": scorer.backend, "input": record, "rows": rows,
                    "output": {"dir": str(output), "files": parts.files, "columns": scorer.added},
                    "started": started, "finished": utc_stamp("milliseconds"), "seconds": round(seconds, 3),
                    "rows_per_s": round(rows / seconds, 1) if seconds > 0 else None,
                    "batch_rows": batch_rows, "factory_version": factory_version(),
                    "energy": meter.stop() if meter is not None else None}
        write_json(parts.tmp / MANIFEST, manifest)
        parts.publish()
    return manifest


def score(cfg) -> dict:
    """Score as ``conf/score.yaml`` says (``scripts/score.py``): load the model, then ``input`` files
    or the ``data`` config's source table.

    Raises:
        ConfigError: neither or both of ``input`` and ``data``; a bad key (``factory.config.validate``).
        FactoryError: an unknown model or stage, a bad input, an existing output (one line each).
    """
    from omegaconf import OmegaConf

    from factory import registry
    from factory.config.validate import validate

    validate(cfg, root="score")
    data = cfg.get("data")  # absent under the defaults list's `data: null`
    if (cfg.input is None) == (data is None):
        raise ConfigError("input: give input=<file, glob or directory> or data=<config>, one of the two")
    check_output(cfg.output)  # before the model loads
    _exit_on_sigterm()
    if registry.get(cfg.model, cfg.registry).metadata().get("kind") == "language_model":
        raise ConfigError(f"model={cfg.model}: a language model scores no rows; generate text with "
                          f"python scripts/generate.py model={cfg.model} prompt=...")
    model = registry.load(cfg.model, cfg.registry, backend=cfg.backend)
    if cfg.input is not None:
        inputs = OmegaConf.to_container(cfg.input) if not isinstance(cfg.input, str) else cfg.input
        return score_files(model, inputs, cfg.output, batch_rows=cfg.batch_rows, progress=cfg.progress,
                           energy=cfg.get("energy"))
    from factory import redact
    from factory.config.instantiate import build
    from factory.data.governed import load_governed

    source = build(data.source, "data.source")
    # Access checked and the read audited; PII left to the Scorer, which applies the model's tags.
    table = load_governed(data, purpose="score", pii_columns={}, source=source).table
    described = {"name": f"data={source.name}", "config": redact.container(OmegaConf.to_container(data.source))}
    return score_table(model, table, cfg.output, source=described, batch_rows=cfg.batch_rows, progress=cfg.progress,
                       energy=cfg.get("energy"))


def _exit_on_sigterm() -> None:
    """For the whole of ``scripts/score.py``: SIGTERM (a scheduler's timeout, ``kill``) exits 143 through
    the same cleanup as an error or Ctrl-C (a default SIGTERM leaves the temp directory)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _Sigterm())


class _Sigterm:
    """A SIGTERM handler: SystemExit(143) in the main thread, at once, or at the next ``check`` while
    ``deferred`` (scoring). Raised from the handler inside an ONNX Runtime call, it crashed the process
    (SIGSEGV, about 1 run in 5), so scoring only notes it and stops between batches (a batch's time).
    A second SIGTERM is ignored: raised inside the cleanup it would cut it short and leave the temp
    directory (SIGKILL still ends a stuck process)."""

    def __init__(self, deferred: bool = False) -> None:
        self.deferred, self.signum = deferred, None

    def __call__(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
            if not self.deferred:
                raise SystemExit(128 + signum)

    def check(self) -> None:
        if self.signum is not None:
            raise SystemExit(128 + self.signum)


@contextlib.contextmanager
def _sigterm_deferred():
    """While scoring, from any caller (``score_files`` in a user's program too): a SIGTERM ends the run
    between batches with SystemExit(143), so ``Parts`` removes its temp directory (the default action
    kills the process and leaves it). Where SIGTERM has its default action it is handled for the run,
    then restored; ``scripts/score.py``'s handler is deferred; a handler the program set is left alone,
    as is a call from another thread (Python signals go to the main thread only)."""
    import signal
    import threading

    handler = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    if isinstance(handler, _Sigterm):
        handler.deferred = True
        try:
            yield handler
        finally:
            handler.deferred = False
    elif handler == signal.SIG_DFL:
        ours = _Sigterm(deferred=True)
        signal.signal(signal.SIGTERM, ours)
        try:
            yield ours
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    else:
        yield _Sigterm(deferred=True)  # never called: its check does nothing


def summary(manifest: dict) -> str:
    """One line for the console: rows, where, which model, how fast, and the manifest's name."""
    return (f"scored {manifest['rows']:,} rows -> {manifest['output']['dir']} ({manifest['model']['ref']}, "
            f"{manifest['backend']}, {manifest['seconds']:.1f} s, {manifest['rows_per_s'] or 0:,.0f} rows/s); "
            f"manifest {MANIFEST}")
