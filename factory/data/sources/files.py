"""CSV and Parquet files: a path, a glob, a (Hive-partitioned) directory, or an fsspec URL."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from factory.data.sources.base import DataSource, LoadedTable
from factory.data.sources.declared import SchemaDeclaration, check_unique_columns, first_line
from factory.data.sources.file_schema import check_text, unify
from factory.errors import DataError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

FORMATS = ("csv", "parquet")
_EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")  # data.csv.gz is a CSV


class FileSource(DataSource):
    """Reads CSV or Parquet into one table; the schema comes from config.

    ``path`` is a file, a glob (``data/*.csv``: the files are concatenated), a directory
    (all its files as one dataset; Hive partitions such as ``country=DE/`` become
    columns), or any fsspec URL (``s3://``, ``gs://``, ``file://``, ``memory://``) when
    the matching fsspec plugin is installed. The types of a glob or directory come from
    all its files (``file_schema.unify``); files whose columns or types disagree are
    reported in one line.

    Args:
        path: file, glob, directory or URL.
        format: ``csv`` or ``parquet``; ``None``: from the file extension.
        target, features, categorical, task, positive_label: see
            ``factory.data.sources.declared.declare_schema``.
        storage_options: passed to fsspec (credentials, endpoint).
        encoding: the text encoding of CSV files (``latin-1``, ``cp1252``, ...).
        filter: rows to keep, ``[[column, op, value], ...]`` (``factory.data.sources.filters``);
            a streamed read (``data=files_stream``) pushes it down to the Parquet files.

    Example:
        >>> FileSource(path="data/churn.csv", target="churned", positive_label="Yes")
    """

    name = "files"

    def __init__(
        self,
        path: str,
        format: str | None = None,
        *,
        target: str,
        features: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        task: str | None = None,
        positive_label: str | int | None = None,
        storage_options: Mapping | None = None,
        encoding: str = "utf-8",
        filter: Sequence | None = None,
    ):
        import codecs

        if format is not None and format not in FORMATS:
            raise DataError(f"unknown data.source.format {format!r}; choose csv or parquet")
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise DataError(f"unknown data.source.encoding {encoding!r}; e.g. utf-8, latin-1, cp1252") from None
        self.encoding = encoding
        self.path = str(path)
        self.format = format
        self.declaration = SchemaDeclaration(target, features, categorical, task, positive_label)
        self.storage_options = storage_options
        self.filter = _plain(filter) if filter is not None else None

    def load(self) -> LoadedTable:
        from factory.data.sources.filters import filter_expression

        table = self._read()
        expression = filter_expression(self.filter, table.column_names)
        return self.declaration.apply(table if expression is None else table.filter(expression), origin=self.path)

    def _read(self) -> pa.Table:
        import fsspec

        try:
            # Hydra passes DictConfig; fsspec plugins expect plain (nested) dicts.
            fs, root = fsspec.core.url_to_fs(self.path, **_plain(self.storage_options or {}))
            is_glob = any(ch in root for ch in "*?[")
            files = sorted(fs.glob(root)) if is_glob else []
            is_dir = not is_glob and fs.isdir(root)
            exists = is_glob or is_dir or fs.exists(root)
        except (ImportError, ValueError, OSError) as err:  # no plugin, bad URL, no access
            raise DataError(f"cannot open {self.path}: {first_line(err)}") from err
        if is_glob and not files:
            raise DataError(f"no files match {self.path}")
        if not exists:
            raise DataError(f"no such file or directory: {self.path}")
        if is_glob:
            return self._read_glob(fs, files)
        return self._read_directory(fs, root) if is_dir else self._read_file(fs, root)

    def _read_file(self, fs: AbstractFileSystem, path: str) -> pa.Table:
        fmt = self.format or _format_of(path)
        try:
            if fmt == "parquet":
                import pyarrow.parquet as pq

                return pq.read_table(path, filesystem=_arrow_fs(fs))
            import pyarrow.csv as pcsv

            with fs.open(path, "rb", compression="infer") as handle:
                table = pcsv.read_csv(handle, read_options=self._csv_read(), convert_options=_csv_convert())
        except (pa.ArrowException, OSError, UnicodeError) as err:  # UnicodeError: a wrong data.source.encoding
            raise DataError(f"cannot read {self._shown(fs, path)} as {fmt}: {first_line(err)}") from err
        check_unique_columns(table.column_names, self._shown(fs, path))
        check_text(table, self._shown(fs, path), self.encoding)
        return table

    def _read_glob(self, fs: AbstractFileSystem, files: list[str]) -> pa.Table:
        tables = {self._shown(fs, f): self._read_file(fs, f) for f in files}
        inferred = all((self.format or _format_of(f)) == "csv" for f in files)
        schema = unify({name: t.schema for name, t in tables.items()}, self.path, inferred)
        try:
            return pa.concat_tables([t.select(schema.names).cast(schema) for t in tables.values()])
        except pa.ArrowException as err:
            raise DataError(f"files matching {self.path} do not fit together: {first_line(err)}") from err

    def _read_directory(self, fs: AbstractFileSystem, root: str) -> pa.Table:
        import pyarrow.dataset as ds

        if fs.isdir(f"{root.rstrip('/')}/_delta_log"):  # its files include those of removed versions
            raise DataError(f"{self.path} is a Delta table: train on it with data=files_stream, which reads its "
                            "latest version's files (docs/data.md)")
        # Same rule as pyarrow.dataset: _SUCCESS, .crc and other _/. files are not data.
        files = [f for f in fs.find(root) if not f.rsplit("/", 1)[-1].startswith(("_", "."))]
        if not files:
            raise DataError(f"directory {self.path} holds no data files")
        fmt = self.format or _format_of(files[0])
        fmt_options = (ds.CsvFileFormat(read_options=self._csv_read(), convert_options=_csv_convert())
                       if fmt == "csv" else fmt)
        try:
            options = {"filesystem": _arrow_fs(fs), "format": fmt_options, "partitioning": "hive"}
            dataset = ds.dataset(root, **options)
            # The dataset's schema is its first file's: decide it from every file instead.
            schemas = {f.path.removeprefix(root).lstrip("/"): f.physical_schema for f in dataset.get_fragments()}
            for name, schema in schemas.items():
                check_unique_columns(schema.names, f"{self.path} ({name})")
            if schemas:
                physical = unify(schemas, self.path, inferred=fmt == "csv")
                partitions = [f for f in dataset.schema if f.name not in physical.names]
                dataset = ds.dataset(root, schema=pa.schema([*physical, *partitions]), **options)
            table = dataset.to_table()
        except (pa.ArrowException, OSError, UnicodeError) as err:
            raise DataError(
                f"cannot read directory {self.path} as {fmt}: {first_line(err)}"
            ) from err
        check_text(table, f"directory {self.path}", self.encoding)
        return table

    def _csv_read(self):
        import pyarrow.csv as pcsv

        return pcsv.ReadOptions(encoding=self.encoding)

    def _shown(self, fs: AbstractFileSystem, path: str) -> str:
        return fs.unstrip_protocol(path) if "://" in self.path else path


def _format_of(path: str) -> str:
    name = path.lower()
    for ext in _COMPRESSIONS:
        name = name.removesuffix(ext)
    for ext, fmt in _EXTENSIONS.items():
        if name.endswith(ext):
            return fmt
    raise DataError(f"cannot tell the format of {path} from its name; set data.source.format")


def _csv_convert():
    import pyarrow.csv as pcsv

    # Empty cells in string columns are missing values, as they are in numeric ones.
    return pcsv.ConvertOptions(strings_can_be_null=True)


def _arrow_fs(fs: AbstractFileSystem) -> AbstractFileSystem | None:
    from fsspec.implementations.local import LocalFileSystem

    # None: pyarrow reads local files natively, faster than through fsspec's Python layer.
    return None if isinstance(fs, LocalFileSystem) else fs


def _plain(value):
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value
