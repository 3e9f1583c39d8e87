"""Where batch scoring writes: Parquet part files in a hidden temp directory, renamed into place at the end.

A failure, a kill or Ctrl-C leaves no directory that looks complete: until the rename, the
output's name does not exist (an empty one made beforehand stays empty). Parts are written by
a background thread (Parquet encoding and compression release the GIL) while the next batch
is read and scored; its queue holds two batches, so memory does not grow with the input.
"""
from __future__ import annotations

import os
import queue
import shutil
import threading
import uuid
from pathlib import Path

import pyarrow as pa

from factory.errors import DataError

#: Rows per output part before a new one starts.
PART_ROWS = 1 << 20
_DONE = object()


def check_output(output: str | os.PathLike) -> Path:
    """``output`` as an absolute path, refused when it exists as a file or a non-empty directory.

    Raises:
        DataError: one line naming it: a completed scoring is never overwritten.
    """
    path = Path(output).absolute()
    if path.is_file() or (path.is_dir() and any(path.iterdir())):
        raise DataError(f"output={output}: exists and is not empty; a completed scoring is never "
                        "overwritten (choose a new directory)")
    return path


class Parts:
    """Parquet part files (``part-00000.parquet``, ...) under a temp directory beside ``output``.

    Use as a context manager: on an error the temp directory is removed; ``publish`` renames it to
    ``output``. ``write(batch)`` queues a batch for the writer thread, which starts a new part every
    ``part_rows`` rows and wherever the schema changes (input files of other column types): many
    small input files of one schema make few parts.
    """

    def __init__(self, output: Path, part_rows: int = PART_ROWS):
        self.output = output
        self.part_rows = part_rows
        self.tmp = output.parent / f".{output.name}.partial-{uuid.uuid4().hex[:8]}"
        self.files: list[dict] = []  # name, rows: filled by the writer thread
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._error: BaseException | None = None  # the writer thread's, raised in the caller's
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write_all, name="score-writer", daemon=True)

    def __enter__(self) -> Parts:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir()
        self._thread.start()
        return self

    def write(self, batch: pa.RecordBatch) -> None:
        """Queue ``batch`` to be written."""
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(batch, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait for every queued batch to be written and the last part closed."""
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def publish(self) -> None:
        """Rename the finished temp directory to ``output`` (an empty directory there is replaced).

        Raises:
            DataError: ``output`` was filled by someone else meanwhile.
        """
        if self.output.is_dir() and not any(self.output.iterdir()):
            self.output.rmdir()
        try:
            os.rename(self.tmp, self.output)
        except OSError as e:
            raise DataError(f"output={self.output}: appeared while scoring ({e.strerror}); "
                            f"nothing was overwritten") from None

    def __exit__(self, kind, error, traceback) -> None:
        if self._thread.is_alive():  # an error upstream: the writer drops what is queued and stops
            self._stop.set()
            self._drain()
            self._queue.put(_DONE)  # only this thread puts: the drained queue has room
            self._thread.join()
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def _write_all(self) -> None:
        import pyarrow.parquet as pq

        writer, rows = None, 0
        try:
            while (item := self._queue.get()) is not _DONE:
                if self._stop.is_set():
                    continue
                batch = item
                if writer is None or rows >= self.part_rows or not batch.schema.equals(writer.schema):
                    if writer is not None:
                        writer.close()
                    name = f"part-{len(self.files):05d}.parquet"
                    writer, rows = pq.ParquetWriter(self.tmp / name, batch.schema), 0
                    self.files.append({"name": name, "rows": 0})
                writer.write_batch(batch)
                rows += batch.num_rows
                self.files[-1]["rows"] = rows
        except BaseException as e:  # raised in the scoring thread at its next write or close
            self._error = e
        finally:
            if writer is not None:
                writer.close()


def progress_bar(total: int | None, enabled: bool | None):
    """A rich progress bar on stderr (rows, rows/s, elapsed; a bar and time left when ``total`` is
    known), or None: ``enabled`` None shows it only when stderr is a terminal."""
    import sys

    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return None
    from rich.console import Console
    from rich.progress import (BarColumn, Progress, ProgressColumn, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class RowsPerSecond(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:,.0f} rows/s" if task.speed else "- rows/s", style="progress.data.speed")

    columns = [TextColumn("[progress.description]{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.completed:,.0f} rows"), RowsPerSecond(), TimeElapsedColumn()]
    if total:
        columns.append(TimeRemainingColumn())
    else:
        columns = [c for c in columns if not isinstance(c, (BarColumn, TaskProgressColumn))]
    return Progress(*columns, console=Console(stderr=True), transient=False)
