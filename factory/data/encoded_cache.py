"""``data.encoded_cache``: a streamed split's encoded rows kept on disk by its first read, memory-mapped after.

Streaming decodes and encodes every row every epoch, and the encoding costs as much CPU as the
Parquet decode itself, so no threading brings an epoch near a raw scan's speed. With a cache
directory, each unit (row group) a reader reads in full has its rows of the split written as
``BatchEncoder`` returns them (unshuffled; split and filter applied) to ``.npy`` files; later epochs,
and later runs with the same key, map them (``np.load(mmap_mode="r")``) and apply the epoch's shuffle
by a gather, reading no Parquet and encoding nothing. Batches are exactly the uncached ones: the same
record batches (their lengths are kept) permuted by the same draws of the same generator.

Layout: ``<dir>/<key>/<split>-<unit index>/{x_num,x_cat,y}.npy`` and ``meta.json``. A unit's files
are written into a ``.tmp-*`` directory, ``meta.json`` last, which is then renamed into place: a unit
directory exists only complete, and a reader killed mid-unit leaves a ``.tmp-*`` directory that is
never read (delete it freely). The key hashes the files' fingerprint (footers, filter, columns), the
fitted preprocessing state, the split settings and the record batch size: changed files or settings
write a new key's directory (old ones are not removed). Disk: rows x (4 bytes x the float width +
8 x embedded categoricals + 8 for the label).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from factory.errors import DataError
from factory.files import write_json

#: Bumped when the layout or the arrays' meaning changes (old keys are then never read).
VERSION = 1
NAMES = ("x_num", "x_cat", "y")


class EncodedCache:
    """One key's directory: complete units are read from it, units read in full are written to it.

    Args:
        root: ``<dir>/<key>``.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @classmethod
    def for_stream(cls, directory: str | os.PathLike, fingerprint: str, preprocessor_state: dict, seed: int,
                   val_fraction: float, test_fraction: float, batch_rows: int, columns: list[str]) -> EncodedCache:
        """The cache of these files and settings under ``directory`` (``data.encoded_cache``)."""
        settings = [VERSION, fingerprint, preprocessor_state, seed, val_fraction, test_fraction, batch_rows, columns]
        key = hashlib.sha256(json.dumps(settings, default=str, sort_keys=True).encode()).hexdigest()[:32]
        return cls(Path(directory) / key)

    def load(self, split: str, index: int, rows: int, name: str) -> tuple[tuple[np.ndarray, ...], list[int]] | None:
        """The unit's mapped arrays and record batch lengths, or None when no complete copy is kept.

        Raises:
            DataError: a kept copy that does not hold the unit's ``rows`` (a damaged directory).
        """
        folder = self.root / f"{split}-{index}"
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (FileNotFoundError, NotADirectoryError):  # not kept (yet); the writer names a bad directory
            return None
        except (OSError, ValueError) as err:
            raise DataError(f"data.encoded_cache: cannot read {folder}/meta.json ({err}); delete {folder}") from None
        if meta.get("rows") != rows or meta.get("unit") != name or sum(meta.get("lengths", [])) != rows:
            raise DataError(f"data.encoded_cache: {folder} holds {meta.get('rows')} rows of {meta.get('unit')}, "
                            f"expected {rows} of {name}; delete {folder}")
        # asarray: a plain read-only view of the map (np.memmap results of a gather would stay memmaps)
        arrays = tuple(np.asarray(np.load(folder / f"{part}.npy", mmap_mode="r")) for part in NAMES)
        if any(len(a) != rows for a in arrays):
            raise DataError(f"data.encoded_cache: {folder} has arrays of the wrong length; delete {folder}")
        return arrays, meta["lengths"]

    def writer(self, split: str, index: int, rows: int, name: str) -> UnitWriter:
        """A writer of the unit's ``rows`` encoded rows, in record batch order."""
        return UnitWriter(self.root, f"{split}-{index}", rows, name)


class UnitWriter:
    """Appends a unit's record batches to ``.npy`` files in a temp directory; ``commit`` publishes it whole.

    Plain appends (each batch's bytes once into the page cache), not a map: the new pages a map
    faults in one by one cost more than the copy.
    """

    def __init__(self, root: Path, folder: str, rows: int, name: str):
        self.root, self.folder, self.rows, self.name = root, folder, rows, name
        self.lengths: list[int] = []
        self.tmp: Path | None = None
        self.files: list | None = None

    def add(self, arrays: tuple[np.ndarray, ...]) -> None:
        n = len(arrays[0])
        if sum(self.lengths) + n > self.rows:
            raise DataError(f"data.encoded_cache: {self.name} gave more than the {self.rows} rows counted by setup")
        try:
            if self.files is None:  # opened on the first batch: the dtypes and widths come from the encoder
                self.root.mkdir(parents=True, exist_ok=True)
                self.tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{self.folder}-", dir=self.root))
                self.files = []
                for part, a in zip(NAMES, arrays):
                    f = open(self.tmp / f"{part}.npy", "wb")  # noqa: SIM115: closed by commit or discard
                    self.files.append(f)
                    header = {"descr": np.lib.format.dtype_to_descr(a.dtype), "fortran_order": False,
                              "shape": (self.rows, *a.shape[1:])}
                    np.lib.format.write_array_header_1_0(f, header)
            for f, a in zip(self.files, arrays):
                f.write(np.ascontiguousarray(a).data)
        except OSError as err:
            raise DataError(f"data.encoded_cache: cannot write under {self.root.parent}: {err}") from None
        self.lengths.append(n)

    def commit(self) -> None:
        """Publish the unit (its row count checked) on the background thread; ``wait`` for it to be done."""
        if self.files is None or sum(self.lengths) != self.rows:
            self.discard()
            return
        for f in self.files:
            f.flush()
        files, tmp = self.files, self.tmp
        self.files = self.tmp = None  # the thread owns them now
        _pending().append(_committer().submit(self._publish, files, tmp))

    def _publish(self, files: list, tmp: Path) -> None:
        """fsync, meta.json, rename: a unit is visible only whole and on disk (a crash leaves no torn unit)."""
        try:
            for f in files:
                os.fsync(f.fileno())
                f.close()
            write_json(tmp / "meta.json", {"unit": self.name, "rows": self.rows, "lengths": self.lengths})
            os.rename(tmp, self.root / self.folder)  # atomic; fails if another process published the unit first
        except OSError:
            if not (self.root / self.folder).exists():
                raise
        finally:
            for f in files:
                f.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def discard(self) -> None:
        for f in self.files or []:
            f.close()
        self.files = None
        if self.tmp is not None and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None


# One thread per process publishes finished units: fsync releases the GIL, so the disk writes overlap
# the next unit's decoding. Created after a fork as needed (a DataLoader worker has its own).
_COMMITS: dict[int, tuple] = {}


def _committer():
    pid = os.getpid()
    if pid not in _COMMITS:
        from concurrent.futures import ThreadPoolExecutor

        _COMMITS[pid] = (ThreadPoolExecutor(1, thread_name_prefix="encoded-cache"), [])
    return _COMMITS[pid][0]


def _pending() -> list:
    _committer()
    return _COMMITS[os.getpid()][1]


def wait() -> None:
    """Block until this process's units are published (an epoch's end; a worker's before it exits).

    Raises:
        DataError: a unit could not be written (disk full, permissions), naming the directory.
    """
    pending = _COMMITS.get(os.getpid(), (None, []))[1]
    while pending:
        future = pending.pop(0)
        try:
            future.result()
        except OSError as err:
            raise DataError(f"data.encoded_cache: cannot write an encoded unit: {err}") from None
