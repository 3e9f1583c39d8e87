"""CSV and Parquet files: a path, a glob, a (Hive-partitioned) directory, or an fsspec URL."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from factory.data.sources.base import DataSource, LoadedTable
from factory.data.sources.declared import SchemaDeclaration, first_line
from factory.errors import DataError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

FORMATS = ("csv", "parquet")
_EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")  # data.csv.gz is a CSV


class FileSource(DataSource):
    """Reads CSV or Parquet into one table; the schema comes from config.

    ``path`` is a file, a glob (``data/*.csv``: the files are concatenated, types
    promoted), a directory (all its files as one dataset; Hive partitions such as
    ``country=DE/`` become columns), or any fsspec URL (``s3://``, ``gs://``, ``file://``,
    ``memory://``) when the matching fsspec plugin is installed.

    Args:
        path: file, glob, directory or URL.
        format: ``csv`` or ``parquet``; ``None``: from the file extension.
        target, features, categorical, task, positive_label: see
            ``factory.data.sources.declared.declare_schema``.
        storage_options: passed to fsspec (credentials, endpoint).

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
    ):
        if format is not None and format not in FORMATS:
            raise DataError(f"unknown data.source.format {format!r}; choose csv or parquet")
        self.path = str(path)
        self.format = format
        self.declaration = SchemaDeclaration(target, features, categorical, task, positive_label)
        self.storage_options = storage_options

    def load(self) -> LoadedTable:
        return self.declaration.apply(self._read())

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
            return _concat([self._read_file(fs, f) for f in files], self.path)
        return self._read_directory(fs, root) if is_dir else self._read_file(fs, root)

    def _read_file(self, fs: AbstractFileSystem, path: str) -> pa.Table:
        fmt = self.format or _format_of(path)
        try:
            if fmt == "parquet":
                import pyarrow.parquet as pq

                return pq.read_table(path, filesystem=_arrow_fs(fs))
            import pyarrow.csv as pcsv

            with fs.open(path, "rb", compression="infer") as handle:
                return pcsv.read_csv(handle, convert_options=_csv_convert())
        except (pa.ArrowException, OSError) as err:
            shown = fs.unstrip_protocol(path) if "://" in self.path else path
            raise DataError(f"cannot read {shown} as {fmt}: {first_line(err)}") from err

    def _read_directory(self, fs: AbstractFileSystem, root: str) -> pa.Table:
        import pyarrow.dataset as ds

        # Same rule as pyarrow.dataset: _SUCCESS, .crc and other _/. files are not data.
        files = [f for f in fs.find(root) if not f.rsplit("/", 1)[-1].startswith(("_", "."))]
        if not files:
            raise DataError(f"directory {self.path} holds no data files")
        fmt = self.format or _format_of(files[0])
        fmt_options = ds.CsvFileFormat(convert_options=_csv_convert()) if fmt == "csv" else fmt
        try:
            dataset = ds.dataset(
                root, filesystem=_arrow_fs(fs), format=fmt_options, partitioning="hive"
            )
            return dataset.to_table()
        except (pa.ArrowException, OSError) as err:
            raise DataError(
                f"cannot read directory {self.path} as {fmt}: {first_line(err)}"
            ) from err


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


def _concat(tables: list[pa.Table], pattern: str) -> pa.Table:
    try:
        # "permissive": an int column in one file and float in another becomes float.
        return pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as err:
        raise DataError(f"files matching {pattern} do not fit together: {first_line(err)}") from err


def _plain(value):
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value
