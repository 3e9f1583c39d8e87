"""What a finished command prints (a short table a person reads at a glance), and what it keeps quiet."""
from __future__ import annotations

import contextlib
import io
import logging
from typing import Iterator, Mapping

#: The logger of what a run shows on the console by default: one line per epoch
#: (``factory.training.callbacks.EpochSummary``). Everything else goes to the run's log file.
PROGRESS = "factory.progress"


def print_metrics(title: str, sections: Mapping[str, Mapping[str, float]], footer: str = "") -> None:
    """A table with one row per metric name and one column per section (val, test, baseline)."""
    from rich.console import Console
    from rich.table import Table

    names: list[str] = []
    for values in sections.values():
        for key in values:
            name = key.split("/", 1)[-1]
            if name not in names:
                names.append(name)
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for section in sections:
        table.add_column(section, justify="right")
    for name in names:
        cells = []
        for section, values in sections.items():
            value = values.get(f"{section}/{name}", values.get(name))
            cells.append("" if value is None else f"{value:.4f}")
        table.add_row(name, *cells)
    console = Console(stderr=False)
    console.print(table)
    if footer:
        console.print(footer, highlight=False, soft_wrap=True)


class LogLines(io.TextIOBase):
    """A text stream whose lines become log records (a progress bar's ``\\r`` rewrites too): where a
    library's prints go when the console should not show them."""

    def __init__(self, logger: logging.Logger, level: int) -> None:
        self._logger, self._level, self._pending = logger, level, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).replace("\r", "\n").split("\n")
        for line in lines:
            if line.strip():
                self._logger.log(self._level, "%s", line.rstrip())
        return len(text)

    def flush(self) -> None:
        if self._pending.strip():
            self._logger.log(self._level, "%s", self._pending.rstrip())
        self._pending = ""


@contextlib.contextmanager
def printed_to_log(logger: str, level: int = logging.DEBUG) -> Iterator[None]:
    """Send what a library prints (``print``, tqdm bars, warnings) to ``logger`` instead of the console.

    For chatty calls whose output means nothing to the reader (DeepSpeed's ZeRO consolidation);
    exceptions still propagate, so an error is never swallowed.
    """
    import warnings

    target = logging.getLogger(logger)
    stream = LogLines(target, level)
    with warnings.catch_warnings(record=True) as caught, \
            contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        warnings.simplefilter("always")
        try:
            yield
        finally:
            stream.flush()
    for warning in caught:
        target.log(level, "%s: %s", warning.category.__name__, warning.message)
