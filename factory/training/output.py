"""What a training run shows on the console, and where the rest goes.

By default a run shows one line per epoch (``callbacks.EpochSummary``; a progress bar on a
terminal) and then its metrics table; errors still show. Everything else (Lightning's info
lines and tips, library warnings, wandb's messages, the model summary) goes to the run's log
file, ``<run_dir>/train.log``: Hydra's job log under ``scripts/train.py``, a handler added for
the run's duration in a notebook. ``verbose: true`` (or ``FACTORY_VERBOSE=1``, which wins over
the config) shows it all on the console as before. The same rules hold in a kernel, in the
CLI, and in the ``scripts/train.py`` process a notebook starts for DDP and DeepSpeed.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Iterator

from omegaconf import DictConfig

from factory.console import PROGRESS, printed_lines_logged
from factory.redact import LogFilter
from factory.rundir.layout import RUN_LOG

VERBOSE_ENV = "FACTORY_VERBOSE"
#: Hydra's job log format: the run's log file reads the same from the CLI and from a kernel.
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
#: The loggers (``.stdout``, ``.stderr``) of what libraries print during a quiet run.
PRINTED_LOGGER = "factory.printed"


def is_verbose(cfg: DictConfig) -> bool:
    """``FACTORY_VERBOSE`` when set (``1``/``true`` or ``0``/``false``), else the config's ``verbose``."""
    value = os.environ.get(VERBOSE_ENV, "").strip().lower()
    if value:
        return value not in ("0", "false", "no", "off")
    return bool(cfg.get("verbose", False))


def shows_progress_bar(cfg: DictConfig) -> bool:
    """``trainer.enable_progress_bar``; unset (null): a bar on a terminal, else a line per epoch.

    In logs, notebooks and CI a bar only adds noise; ``FACTORY_PROGRESS_BAR=0`` turns it off on a
    terminal too (report kernels, where a bar is hundreds of outputs).
    """
    progress = cfg.trainer.get("enable_progress_bar")
    if progress is None:
        return sys.stderr.isatty() and os.environ.get("FACTORY_PROGRESS_BAR") != "0"
    return bool(progress)


class _ConsoleFilter(logging.Filter):
    """On a console handler: epoch lines never (the progress handler shows them), the rest by verbosity."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == PROGRESS:
            return False
        # factory's own warnings are meant for the user (a precision or offload fallback); libraries' are not
        shown_from = logging.WARNING if record.name.startswith("factory.") and \
            not record.name.startswith(PRINTED_LOGGER) else logging.ERROR
        return self.verbose or record.levelno >= shown_from


class RunOutput:
    """The logging set-up of one run; ``run_output`` applies it and takes it all back."""

    def __init__(self, run_dir: Path, verbose: bool, progress_bar: bool, log_name: str = RUN_LOG) -> None:
        self.run_dir, self.verbose, self.progress_bar, self.log_name = run_dir, verbose, progress_bar, log_name
        self._undo = contextlib.ExitStack()
        self._filter = _ConsoleFilter(verbose)
        self._redact = LogFilter()  # on the file and every console handler: no credential is written
        self._file: logging.Handler | None = None

    def start(self) -> None:
        root = logging.getLogger()
        self._file = next((h for h in root.handlers if isinstance(h, logging.FileHandler)  # Hydra's job log
                           and Path(h.baseFilename).parent == self.run_dir.resolve()), None)
        if self._file is None:  # a kernel: the same file Hydra's job log would be
            self._file = _RunLogFile(self.run_dir / self.log_name)
            self._file.setFormatter(logging.Formatter(LOG_FORMAT))
            self._undo.callback(self._file.close)
            self._add_handler(root, self._file)
        self._add_filter(self._file, self._redact)
        self._set_level(root, min(root.getEffectiveLevel(), logging.INFO))  # INFO reaches the file, as under Hydra
        progress = logging.getLogger(PROGRESS)
        self._set_level(progress, logging.INFO)
        shown = logging.StreamHandler(sys.stdout)  # stdout, as the metrics table: one stream for what a run shows
        shown.setFormatter(logging.Formatter("%(message)s"))
        self._add_handler(progress, shown)
        if not any(_is_console(h) for h in root.handlers):  # a kernel: errors show (verbose: INFO, as Lightning's)
            self._add_handler(root, logging.StreamHandler(sys.stderr))  # stands in for logging's lastResort
        self.adopt_loggers()
        if not self.verbose:
            if getattr(logging, "_warnings_showwarning", None) is None:  # not captured already (by the caller)
                logging.captureWarnings(True)
                self._undo.callback(logging.captureWarnings, False)
            # What libraries print themselves (wandb's banner and summary, DeepSpeed's op builds, tqdm) goes
            # to the log too; the progress handler and handlers made before keep their stream, and the
            # metrics table is printed after the run. A progress bar (a terminal) keeps stdout.
            self._undo.enter_context(printed_lines_logged("stderr", f"{PRINTED_LOGGER}.stderr"))  # notice() shows
            if not self.progress_bar:
                self._undo.enter_context(printed_lines_logged("stdout", f"{PRINTED_LOGGER}.stdout"))

    def adopt_loggers(self) -> None:
        """Filter every console handler; loggers that keep their records (Lightning's in a kernel,
        DeepSpeed's) also write to the file. Call again once a strategy has imported its library."""
        root = logging.getLogger()
        loggers = [root] + [logger for logger in logging.Logger.manager.loggerDict.values()
                            if isinstance(logger, logging.Logger) and not logger.propagate]
        for logger in loggers:
            for handler in logger.handlers:
                if _is_console(handler) and self._filter not in handler.filters and logger.name != PROGRESS:
                    self._add_filter(handler, self._redact)
                    self._add_filter(handler, self._filter)
            if logger is not root and self._file not in logger.handlers:
                self._add_handler(logger, self._file)

    def close(self) -> None:
        self._undo.close()  # in reverse order: streams, warnings, filters, levels, handlers, the file

    def _add_handler(self, logger: logging.Logger, handler: logging.Handler) -> None:
        logger.addHandler(handler)
        self._undo.callback(logger.removeHandler, handler)

    def _add_filter(self, handler: logging.Handler, log_filter: logging.Filter) -> None:
        if log_filter not in handler.filters:
            handler.addFilter(log_filter)
            self._undo.callback(handler.removeFilter, log_filter)

    def _set_level(self, logger: logging.Logger, level: int) -> None:
        self._undo.callback(logger.setLevel, logger.level)
        logger.setLevel(level)


class _RunLogFile(logging.FileHandler):
    """Opened at the first record, creating the run directory then (``RunContext.begin`` would anyway)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


def _is_console(handler: logging.Handler) -> bool:
    """A handler that writes to a stream, not a file nor memory (pytest's ``caplog`` keeps every record)."""
    return (isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
            and not isinstance(handler.stream, io.StringIO))


@contextlib.contextmanager
def run_output(cfg: DictConfig, log_name: str = RUN_LOG, progress_bar: bool | None = None) -> Iterator[RunOutput]:
    """The console and log file of the run ``cfg`` (``paths.run_dir`` pinned) for the ``with`` block.

    Everything is restored on exit, so runs repeated in one kernel neither stack handlers nor
    leave warnings captured (see the module doc).

    Args:
        cfg: the run's config (``paths.run_dir``, ``verbose``, ``trainer.enable_progress_bar``).
        log_name: the log file in the run directory, unless Hydra's job log is already there.
        progress_bar: whether the run shows a bar; ``None``: ``shows_progress_bar(cfg)``.
    """
    if progress_bar is None:
        progress_bar = shows_progress_bar(cfg)
    output = RunOutput(Path(cfg.paths.run_dir), is_verbose(cfg), progress_bar, log_name)
    try:
        output.start()
        with warnings.catch_warnings():  # the run's warning filters and registry stay the run's
            yield output
    finally:
        output.close()
