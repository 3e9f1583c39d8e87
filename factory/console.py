"""What a finished command prints (a short table a person reads at a glance), and what it keeps quiet."""
from __future__ import annotations

import contextlib
import io
import logging
import sys
from typing import Iterator, Mapping, TextIO

#: The logger of what a run shows on the console by default: one line per epoch
#: (``factory.training.callbacks.EpochSummary``). Everything else goes to the run's log file.
PROGRESS = "factory.progress"


def print_metrics(title: str, sections: Mapping[str, Mapping[str, float]], footer: str = "",
                  spread: Mapping[str, Mapping[str, float]] | None = None) -> None:
    """A table with one row per metric name and one column per section (val, test, each baseline).

    A section's keys are metric names, bare (``auroc``) or with the section's prefix (``test/auroc``).
    ``spread``: a standard deviation per value, shaped like ``sections`` (a cross-validated run's);
    its cells read ``mean±sd``.
    """
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
            sds = (spread or {}).get(section) or {}
            sd = sds.get(f"{section}/{name}", sds.get(name))
            # no spaces: an 80-column console keeps each cell on one line
            cells.append("" if value is None else f"{value:.4f}" if sd is None else f"{value:.4f}±{sd:.4f}")
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


_console_stderr: list[TextIO] = []  # the console's stderr, while quiet runs send sys.stderr to their log


@contextlib.contextmanager
def printed_lines_logged(stream: str, logger: str, level: int = logging.INFO) -> Iterator[None]:
    """``sys.stdout`` or ``sys.stderr`` (``stream``) as lines logged to ``logger`` for the block.

    ``notice`` still reaches the console's stderr meanwhile.
    """
    lines = LogLines(logging.getLogger(logger), level)
    original = getattr(sys, stream)
    kept = [sys.stderr] if stream == "stderr" else []
    redirect = contextlib.redirect_stderr if kept else contextlib.redirect_stdout
    _console_stderr.extend(kept)
    try:
        with redirect(lines):
            try:
                yield
            finally:
                lines.flush()
    finally:
        del _console_stderr[len(_console_stderr) - len(kept):]
        _hand_back(lines, original)


def _hand_back(lines: LogLines, original: TextIO) -> None:
    """Handlers created during the block on ``sys.stdout``/``sys.stderr`` (DeepSpeed's, made at its first
    import) got ``lines``: give them the real stream, or their records would vanish into a closed block."""
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", ()):
            if isinstance(handler, logging.StreamHandler) and handler.stream is lines:
                handler.setStream(original)


def notice(message: str) -> None:
    """A line the user must see (an interruption, a resumed run), on the console's stderr, also during a quiet run."""
    print(message, file=_console_stderr[-1] if _console_stderr else sys.stderr, flush=True)


@contextlib.contextmanager
def printed_to_log(logger: str, level: int = logging.DEBUG) -> Iterator[None]:
    """Send what a library prints (``print``, tqdm bars, warnings) to ``logger`` instead of the console.

    For chatty calls whose output means nothing to the reader (DeepSpeed's ZeRO consolidation);
    exceptions still propagate, so an error is never swallowed.
    """
    import warnings

    target = logging.getLogger(logger)
    stream = LogLines(target, level)
    console_stdout = sys.stdout
    # Libraries that log through their own console handler (DeepSpeed's logger prints to stdout) keep quiet too.
    own = [logging.getLogger(name) for name in _OWN_CONSOLE_LOGGERS if name in logging.Logger.manager.loggerDict]
    levels = [lg.level for lg in own]
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught, \
                contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            warnings.simplefilter("always")
            for lg in own:
                lg.setLevel(logging.ERROR)
            try:
                yield
            finally:
                stream.flush()
    finally:
        for lg, before in zip(own, levels):
            lg.setLevel(before)
        _hand_back(stream, console_stdout)  # a handler made on stderr meanwhile holds the same object: stdout's
        for warning in caught:  # logged when the block raised too: they may explain the error
            target.log(level, "%s: %s", warning.category.__name__, warning.message)


#: Loggers with a console handler of their own (``propagate = False``) that ``printed_to_log`` quiets.
_OWN_CONSOLE_LOGGERS = ("DeepSpeed",)
