"""Parquet read as a stream of record batches: row groups as units, a split per row, statistics in one pass.

No torch here: ``factory.data.streaming`` turns these batches into tensors for a DataLoader.

Units. A dataset (a directory, with Hive partitions, or a glob of files: Spark's and Ray
Data's ``part-*.parquet`` layouts; ``_SUCCESS`` and other ``_``/``.`` files are skipped; a Delta
table's directory: the files of its latest version, listed by ``deltalake``) is cut into its row
groups, sorted by file and position. Row groups a ``data.source.filter`` rules out by their statistics, and files whose Hive partition it rules out, are never units: that is the
filter's pushdown. Each DataLoader worker of each rank reads the units ``g, g + G, ...`` of the
(per-epoch shuffled) list, ``g = worker * world_size + rank``, ``G = world_size * workers``: every
row group is read by exactly one process.

Splits. A row's split is a hash of (its file's path under the dataset's root, its position in
the file, ``split_seed``) mapped to [0, 1): below ``test_fraction`` test, then val, else train.
It does not depend on the filter, the sharding, the batch size or which process reads it; it
does change when the files are rewritten (a new layout moves rows). Shares hold in expectation
(not per class: no stratification, which needs the labels before the split).

Statistics. ``fit_statistics`` reads every unit once: it checks each batch (one line naming
file and row), counts each unit's rows per split (equal steps per rank follow from them), and
gathers the train rows' means and standard deviations (Chan's pairwise merge, float64), missing
values, category levels and target classes. Quantile bins come from a uniform sample of at most
``sample_rows`` rows (all rows when the dataset holds no more: bins then equal ``Preprocessor.fit``'s).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from factory.data.preprocessing import Preprocessor, _as_text, _numeric_matrix
from factory.data.sources.declared import decimals_to_float, first_line, listing
from factory.data.sources.filters import filter_columns, filter_expression
from factory.data.spec import TableSchema
from factory.errors import DataError

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
#: Rows declared on to infer features and task when the config leaves them out.
SCHEMA_SAMPLE_ROWS = 65_536
_ROW, _SPLIT = "__factory_row", "__factory_split"


@dataclass(frozen=True)
class Unit:
    """One row group: the smallest piece a process reads."""

    path: str  # as the filesystem opens it
    name: str  # relative to the dataset's root: messages and the split hash
    row_group: int
    first_row: int  # the row group's first row within its file
    rows: int


class ParquetStream:
    """A ``FileSource``'s Parquet files, opened as a ``pyarrow.dataset`` and read unit by unit.

    Args:
        source: the ``factory.data.sources.FileSource`` (path, schema keys, filter, storage options).
        batch_rows: rows per record batch read.
    """

    def __init__(self, source, batch_rows: int = 65_536):
        if source.format not in (None, "parquet"):
            raise DataError(f"data.source.format={source.format}: streaming reads Parquet; use data=files for CSV")
        self.source, self.batch_rows = source, batch_rows
        self.path = source.path
        self._open()

    def _open(self) -> None:
        import fsspec
        import pyarrow.dataset as ds

        from factory.data.sources.file_schema import unify
        from factory.data.sources.files import _arrow_fs, _plain

        try:
            fs, root = fsspec.core.url_to_fs(self.path, **_plain(self.source.storage_options or {}))
            if any(ch in root for ch in "*?["):
                files, base = sorted(fs.glob(root)), root[: min(root.find(ch) for ch in "*?[" if ch in root)]
                base = base.rsplit("/", 1)[0] if "/" in base else ""
            elif fs.isdir(root) and fs.isdir(f"{root.rstrip('/')}/_delta_log"):
                files, base = _delta_files(self.path, fs, self.source.storage_options), root
            elif fs.isdir(root):
                files, base = sorted(fs.find(root)), root
            elif fs.exists(root):
                files, base = [root], root.rsplit("/", 1)[0] if "/" in root else ""
            else:
                raise DataError(f"no such file or directory: {self.path}")
        except (ImportError, ValueError, OSError) as err:
            raise DataError(f"cannot open {self.path}: {first_line(err)}") from err
        files = [f for f in files if not f.rsplit("/", 1)[-1].startswith(("_", "."))]  # _SUCCESS, .crc
        if not files:
            raise DataError(f"{self.path} holds no data files")
        not_parquet = [f for f in files if not f.lower().endswith((".parquet", ".pq", ".parq"))
                       and "." in f.rsplit("/", 1)[-1]]
        if not_parquet and self.source.format is None:
            raise DataError(f"{self.path}: streaming reads Parquet, found {listing(not_parquet, 3)}; "
                            "use data=files for CSV (or set data.source.format=parquet)")
        self._base = base.rstrip("/")
        options = {"filesystem": _arrow_fs(fs), "format": "parquet",
                   "partitioning": ds.partitioning(flavor="hive"), "partition_base_dir": self._base or None}
        try:
            dataset = ds.dataset(files, **options)
            fragments = list(dataset.get_fragments())
            schemas = {self._name(f.path): f.physical_schema for f in fragments}
            physical = unify(schemas, self.path, inferred=False)
            partitions = [f for f in dataset.schema if f.name not in physical.names]
            self.dataset = ds.dataset(files, schema=pa.schema([*physical, *partitions]), **options)
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"cannot read {self.path} as parquet: {first_line(err)}") from err
        self.expression = filter_expression(self.source.filter, self.dataset.schema.names)
        self.schema = self._declare()
        wanted = [*self.schema.features, self.schema.target]
        self.columns = list(dict.fromkeys([*wanted, *filter_columns(self.source.filter)]))
        self.units = self._units()
        # Text categoricals as the files store them, dictionary-encoded: decoding skips building each
        # row's string (3x faster here) and the encoding looks up each distinct value once
        # (factory.data.batch_encoder). Not the target, nor a column the filter compares.
        self.dictionary_columns = [
            name for name in self.schema.categorical
            if name in physical.names and name not in filter_columns(self.source.filter)
            and (pa.types.is_string(physical.field(name).type) or pa.types.is_large_string(physical.field(name).type))]
        self._options = options
        self._files = files

    def _name(self, path: str) -> str:
        return path[len(self._base):].lstrip("/") if self._base and path.startswith(self._base) else path

    def _declare(self) -> TableSchema:
        """The schema declared over the first rows (features and task inferred as ``data=files`` infers them)."""
        from factory.data.sources.declared import declare_schema

        declared = self.source.declaration
        columns = None if declared.features is None else list(dict.fromkeys(  # a projection already here
            [*declared.features, declared.target, *filter_columns(self.source.filter)]))
        names = self.dataset.schema.names
        absent = [c for c in columns or [] if c not in names]
        if absent:  # declare_schema's words, before Arrow's
            what = "target" if absent[0] == declared.target else "feature"
            raise DataError(f"unknown {what} column {listing(map(repr, absent))}; available columns: {listing(names)}")
        try:
            # one file, one batch at a time: the default read-ahead (4 files x 16 batches) made this the
            # peak of a run's memory, growing with the files (+370 MB at 10M rows here)
            sample = self.dataset.head(SCHEMA_SAMPLE_ROWS, columns=columns, batch_readahead=1, fragment_readahead=1)
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"cannot read {self.path}: {first_line(err)}") from err
        if self.expression is not None:
            kept = sample.filter(self.expression)
            sample = kept if kept.num_rows else sample  # the filter may keep none of the first rows
        return declare_schema(decimals_to_float(sample), declared.target, declared.features, declared.categorical,
                              declared.task, declared.positive_label, self.path)

    def _units(self) -> list[Unit]:
        units = []
        try:
            for fragment in self.dataset.get_fragments(filter=self.expression):  # Hive partitions pruned
                groups = fragment.metadata
                starts = np.concatenate([[0], np.cumsum([groups.row_group(i).num_rows
                                                         for i in range(groups.num_row_groups)])])
                kept = fragment if self.expression is None else fragment.subset(filter=self.expression,
                                                                                 schema=self.dataset.schema)
                for group in kept.row_groups:  # row groups whose statistics rule the filter out are gone
                    units.append(Unit(fragment.path, self._name(fragment.path), group.id, int(starts[group.id]),
                                      group.num_rows))
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"cannot read {self.path} as parquet: {first_line(err)}") from err
        return sorted(units, key=lambda u: (u.name, u.row_group))

    def fingerprint(self) -> str:
        """sha256 of the files' Parquet footers (row counts, sizes, column statistics), the filter and columns.

        Cheap (no value is read) and it changes whenever a file is rewritten; not a hash of every value.
        """
        digest = hashlib.sha256(json.dumps([self.source.filter, self.columns], default=str).encode())
        for fragment in sorted(self.dataset.get_fragments(), key=lambda f: self._name(f.path)):
            digest.update(self._name(fragment.path).encode())
            digest.update(json.dumps(fragment.metadata.to_dict(), default=str, sort_keys=True).encode())
        return digest.hexdigest()

    def read(self, unit: Unit, dictionaries: bool = False) -> Iterator[tuple[pa.Table, np.ndarray]]:
        """The unit's rows (projected, filter not yet applied) in record batches, with their row numbers in the file.

        ``dictionaries``: the ``dictionary_columns`` come as Arrow dictionaries (values as stored), for
        encoding; otherwise as the dataset's schema types them.
        """
        offset = unit.first_row
        try:
            dictionaries = dictionaries and bool(self.dictionary_columns)
            dataset = self._dictionary_dataset() if dictionaries else self.dataset
            part = self._fragment(unit, dataset, dictionaries)
            for batch in part.to_batches(schema=dataset.schema, columns=self.columns,
                                         batch_size=self.batch_rows):
                rows = np.arange(offset, offset + batch.num_rows, dtype=np.int64)
                offset += batch.num_rows
                yield decimals_to_float(pa.Table.from_batches([batch])), rows
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"cannot read {unit.name} (row group {unit.row_group}): {first_line(err)}") from err

    def _fragment(self, unit: Unit, dataset, dictionaries: bool):
        if not hasattr(self, "_by_path"):
            self._by_path = {}
        if dictionaries not in self._by_path:
            self._by_path[dictionaries] = {f.path: f for f in dataset.get_fragments()}
        return self._by_path[dictionaries][unit.path].subset(row_group_ids=[unit.row_group])

    def _dictionary_dataset(self):
        """The dataset again, its ``dictionary_columns`` read as dictionaries (opened once, on first use)."""
        if not hasattr(self, "_dictionaries"):
            import pyarrow.dataset as ds

            names = set(self.dictionary_columns)
            schema = pa.schema([pa.field(f.name, pa.dictionary(pa.int32(), f.type), f.nullable) if f.name in names
                                else f for f in self.dataset.schema])
            options = {**self._options, "format": ds.ParquetFileFormat(dictionary_columns=sorted(names))}
            self._dictionaries = ds.dataset(self._files, schema=schema, **options)
        return self._dictionaries

    def select(self, table: pa.Table, rows: np.ndarray, codes: np.ndarray,
               split: str | None) -> tuple[pa.Table, np.ndarray, np.ndarray]:
        """The rows of ``table`` in ``split`` (None: all) that pass the filter, with their row numbers and splits."""
        if split is None and self.expression is None:
            return table, rows, codes
        mask = np.ones(len(rows), dtype=bool) if split is None else codes == SPLIT_CODES[split]
        if self.expression is None:
            if mask.all():  # one split only (or a batch of it): no copy
                return table, rows, codes
            return table.filter(pa.array(mask)), rows[mask], codes[mask]
        table = (table.append_column(_ROW, pa.array(rows)).append_column(_SPLIT, pa.array(codes))
                 .filter(pa.array(mask)).filter(self.expression))
        return (table.drop_columns([_ROW, _SPLIT]), table.column(_ROW).to_numpy(),
                table.column(_SPLIT).to_numpy())


def _delta_files(path: str, fs, storage_options) -> list[str]:
    """The Parquet files of a Delta table's latest version (its directory also holds removed versions' files)."""
    try:
        from deltalake import DeltaTable
    except ImportError:
        raise DataError(f"{path} is a Delta table (it has _delta_log/): pip install 'factory[delta]' (deltalake) "
                        "to read its latest version") from None
    from factory.data.sources.files import _plain

    try:
        table = DeltaTable(path, storage_options=_plain(storage_options or {}) or None)
        uris, features = table.file_uris(), set(table.protocol().reader_features or [])
    except Exception as err:  # noqa: BLE001: deltalake raises its own types (TableNotFoundError, DeltaError, ...)
        raise DataError(f"cannot read the Delta table {path}: {first_line(err)}") from err
    # Deletion vectors and column mapping change what the files' rows mean: read raw, they would be wrong.
    unsupported = sorted(features & {"deletionVectors", "columnMapping"})
    if unsupported:
        raise DataError(f"the Delta table {path} uses {', '.join(unsupported)}, which a read of its Parquet files "
                        "cannot apply; rewrite it without them (e.g. REORG TABLE ... APPLY (PURGE)) or export Parquet")
    return sorted(fs._strip_protocol(uri) for uri in uris)


def split_codes(unit: Unit, rows: np.ndarray, seed: int, val_fraction: float, test_fraction: float) -> np.ndarray:
    """Each row's split (``SPLIT_CODES``) from the hash of (file name, row number, seed)."""
    u = _uniform(_row_hash(unit, rows, seed))
    return np.where(u < test_fraction, 2, np.where(u < test_fraction + val_fraction, 1, 0)).astype(np.int8)


def _row_hash(unit: Unit, rows: np.ndarray, seed: int) -> np.ndarray:
    key = int.from_bytes(hashlib.blake2b(f"{seed}:{unit.name}".encode(), digest_size=8).digest(), "little")
    return _mix(_mix(rows.astype(np.uint64)) ^ np.uint64(key))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: uint64 in, well-mixed uint64 out (wrapping arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniform(h: np.ndarray) -> np.ndarray:
    return (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def check_batch(table: pa.Table, rows: np.ndarray, schema: TableSchema, unit: Unit) -> None:
    """Raise ``DataError`` naming the file and row of the first bad value a batch holds.

    Bad: an infinite numeric feature, a missing target, a binary target other than 0/1 (with
    no ``positive_label``), a non-finite regression target.
    """
    def fail(index: int, problem: str) -> None:
        raise DataError(f"{unit.name}: row {int(rows[index])}: {problem}")

    for name in schema.numeric:
        values = _numeric_matrix_unchecked(table, name)
        bad = np.flatnonzero(np.isinf(values))
        if bad.size:
            fail(bad[0], f"numeric feature {name!r} is {values[bad[0]]}")
    target = table.column(schema.target)
    if target.null_count:
        fail(np.flatnonzero(pc.is_null(target).to_numpy(zero_copy_only=False))[0],
             f"target {schema.target!r} is missing; drop or fill those rows (data.source.filter)")
    if schema.task == "regression" or (schema.task == "binary" and schema.positive_label is None):
        y = pc.cast(target, pa.float64()).to_numpy()
        bad = np.flatnonzero(~np.isfinite(y) if schema.task == "regression" else ~np.isin(y, (0.0, 1.0)))
        if bad.size:
            fail(bad[0], f"target {schema.target!r} is {y[bad[0]]}"
                 + ("" if schema.task == "regression" else "; a binary target is 0/1, or set positive_label"))


def _numeric_matrix_unchecked(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return pc.cast(column, pa.float64()).to_numpy()


class _Moments:
    """Count, mean and sum of squared deviations per column, merged batch by batch (Chan et al.)."""

    def __init__(self, n: int):
        self.count, self.mean, self.m2 = np.zeros(n), np.zeros(n), np.zeros(n)

    def add(self, values: np.ndarray) -> None:  # (N, n) float64, NaN = missing
        seen = ~np.isnan(values)
        count = seen.sum(axis=0).astype(np.float64)
        safe = np.maximum(count, 1)
        mean = np.where(seen, values, 0.0).sum(axis=0) / safe
        m2 = np.where(seen, (values - mean) ** 2, 0.0).sum(axis=0)
        total = self.count + count
        delta = mean - self.mean
        share = np.divide(count, total, out=np.zeros_like(total), where=total > 0)
        self.mean = self.mean + delta * share
        self.m2 = self.m2 + m2 + delta ** 2 * self.count * share
        self.count = total

    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / np.maximum(self.count, 1))


@dataclass
class StreamStatistics:
    """What one pass over the stream gives: the fitted preprocessor and each unit's rows per split."""

    preprocessor: Preprocessor
    unit_rows: np.ndarray  # (n_units, 3) int64: train, val, test rows of each unit (after the filter)
    targets: tuple[pa.Array, np.ndarray]  # the train target's distinct values and their counts (classification)

    def to_json(self) -> dict:
        return {"preprocessor": self.preprocessor.state_dict(), "unit_rows": self.unit_rows.tolist(),
                "targets": [self.targets[0].to_pylist(), self.targets[1].tolist()]}

    @classmethod
    def from_json(cls, data: dict, target_type: pa.DataType) -> StreamStatistics:
        values, counts = data["targets"]
        return cls(Preprocessor.from_state_dict(data["preprocessor"]),
                   np.array(data["unit_rows"], dtype=np.int64).reshape(-1, 3),
                   (pa.array(values, target_type), np.array(counts, dtype=np.int64)))


def cached_statistics(stream: ParquetStream, fingerprint: str, cache: str | None, *args) -> StreamStatistics:
    """``fit_statistics(stream, *args)``, kept in ``<cache>/<key>.json``: one pass per machine, not per rank.

    The key hashes the files' fingerprint, the columns, the schema and ``args``, so changed files or
    settings make a new pass. The first process to take the key's lock makes the pass; the ranks
    waiting on it read its result (on a shared filesystem, the whole cluster's ranks). ``cache`` None:
    no file, a pass per call.
    """
    if cache is None:
        return fit_statistics(stream, *args)
    from pathlib import Path

    from factory.files import locked, write_json

    schema = {"features": stream.schema.features, "target": stream.schema.target, "task": stream.schema.task,
              "positive_label": stream.schema.positive_label}
    key = hashlib.sha256(json.dumps([fingerprint, stream.columns, schema, list(args)], default=str,
                                    sort_keys=True).encode()).hexdigest()[:32]
    path = Path(cache) / f"{key}.json"
    target_type = stream.dataset.schema.field(stream.schema.target).type
    if pa.types.is_dictionary(target_type):
        target_type = target_type.value_type
    with locked(path.with_suffix(".lock")):
        if path.exists():
            stats = StreamStatistics.from_json(json.loads(path.read_text()), target_type)
            if len(stats.unit_rows) == len(stream.units):
                return stats
        stats = fit_statistics(stream, *args)
        write_json(path, stats.to_json())
        return stats


def fit_statistics(stream: ParquetStream, seed: int, val_fraction: float, test_fraction: float,
                   max_onehot: int = 16, sample_rows: int = 1_000_000) -> StreamStatistics:
    """Read every unit once: check it, count its rows per split, gather the train statistics.

    Raises:
        DataError: a bad value (file and row named), or no train rows.
    """
    schema = stream.schema
    moments = _Moments(len(schema.numeric))
    missing = np.zeros(len(schema.numeric), dtype=bool)
    levels: dict[str, set] = {name: set() for name in schema.categorical}
    targets: dict = {}
    samples: list[np.ndarray] = []
    total = sum(u.rows for u in stream.units)
    keep = min(1.0, sample_rows / max(total, 1))  # all rows when they fit: bins as Preprocessor.fit's
    unit_rows = np.zeros((len(stream.units), 3), dtype=np.int64)
    for i, unit in enumerate(stream.units):
        for table, rows in stream.read(unit):
            codes = split_codes(unit, rows, seed, val_fraction, test_fraction)
            table, rows, codes = stream.select(table, rows, codes, None)
            check_batch(table, rows, schema, unit)
            unit_rows[i] += np.bincount(codes, minlength=3)
            train = codes == 0
            if not train.any():
                continue
            part = table.filter(pa.array(train))
            values = _numeric_matrix(part, schema.numeric)
            moments.add(values)
            missing |= np.isnan(values).any(axis=0)
            for name in schema.categorical:
                levels[name].update(pc.unique(_as_text(part.column(name)).drop_null()).to_pylist())
            if schema.task != "regression":
                for item in pc.value_counts(part.column(schema.target)).to_pylist():
                    targets[item["values"]] = targets.get(item["values"], 0) + item["counts"]
            if keep < 1.0:
                values = values[_uniform(_mix(_row_hash(unit, rows[train], seed) ^ np.uint64(0x5A17))) < keep]
            samples.append(values)
    if unit_rows[:, 0].sum() == 0:
        raise DataError(f"{stream.path}: no train rows (after data.source.filter, with data.val_fraction="
                        f"{val_fraction:g}, data.test_fraction={test_fraction:g})")
    sample = np.concatenate(samples) if samples else np.empty((0, len(schema.numeric)))
    target_type = stream.dataset.schema.field(schema.target).type
    if pa.types.is_dictionary(target_type):
        target_type = target_type.value_type
    classes = pa.array(list(targets), target_type)
    preprocessor = Preprocessor.from_statistics(
        schema, moments.mean, moments.std(), missing, {k: list(v) for k, v in levels.items()}, classes, max_onehot,
        [col[~np.isnan(col)] for col in sample.T])
    return StreamStatistics(preprocessor, unit_rows, (classes, np.array(list(targets.values()), dtype=np.int64)))
