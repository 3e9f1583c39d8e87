"""factory.training.output: a quiet run's console shows epochs, errors and notices; its log gets the rest."""
from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from typing import Iterator

import pytest
from omegaconf import OmegaConf

from factory.console import PROGRESS, notice, printed_lines_logged, printed_to_log
from factory.rundir.layout import RUN_LOG
from factory.training.output import VERBOSE_ENV, is_verbose, run_output


def _cfg(run_dir, verbose: bool = False):
    return OmegaConf.create({"paths": {"run_dir": str(run_dir)}, "trainer": {"enable_progress_bar": False},
                             "verbose": verbose})


@contextlib.contextmanager
def recording_console() -> Iterator[list[str]]:
    """A console handler on the root logger made before the run (as Hydra's), recording what it would show."""
    seen: list[str] = []
    console = logging.StreamHandler(sys.stderr)
    console.emit = lambda record: seen.append(record.getMessage())  # the filters run before emit
    logging.getLogger().addHandler(console)
    try:
        yield seen
    finally:
        logging.getLogger().removeHandler(console)


def _state():
    root = logging.getLogger()
    return (list(root.handlers), root.level, list(logging.getLogger(PROGRESS).handlers),
            sys.stdout, sys.stderr, warnings.showwarning)


def test_quiet_run_shows_epochs_errors_and_notices_and_logs_the_rest(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    before = _state()
    with run_output(_cfg(tmp_path)):
        logging.getLogger(PROGRESS).info("epoch 1/1  val/loss 0.5000")
        logging.getLogger("pytorch_lightning.utilities.rank_zero").info("Restoring states from the checkpoint")
        warnings.warn("a library's deprecation")
        print("a library's own print")
        print("wandb: Run summary:", file=sys.stderr)
        notice("interrupted: SIGINT at epoch 1")
    shown = capsys.readouterr()
    assert shown.out == "epoch 1/1  val/loss 0.5000\n"
    assert shown.err == "interrupted: SIGINT at epoch 1\n"
    log = (tmp_path / RUN_LOG).read_text()
    for line in ("epoch 1/1", "Restoring states", "[py.warnings][WARNING]", "a library's deprecation",
                 "a library's own print", "wandb: Run summary:"):
        assert line in log
    assert _state() == before  # nothing left behind: a kernel runs many


def test_quiet_run_restores_logging_after_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    before = _state()
    with pytest.raises(RuntimeError, match="boom"):
        with run_output(_cfg(tmp_path)):
            raise RuntimeError("boom")
    assert _state() == before


def test_errors_reach_console_handlers_in_a_quiet_run(tmp_path, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    with recording_console() as seen, run_output(_cfg(tmp_path)):
        logging.getLogger("factory.x").info("details")
        logging.getLogger("factory.x").warning("a warning")
        logging.getLogger("factory.x").error("a tracker failed")
    assert seen == ["a warning", "a tracker failed"]  # factory's warnings are for the user (a fallback taken)


def test_errors_show_where_no_console_handler_was_set_up(tmp_path, capsys, monkeypatch):
    # A kernel: the root logger has no handler, so logging's lastResort showed warnings and errors.
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    with run_output(_cfg(tmp_path)):
        logging.getLogger("pytorch_lightning.trainer").warning("a library's warning")
        logging.getLogger("factory.tracking.loggers").error("tracking: could not publish run x")
    assert capsys.readouterr().err == "tracking: could not publish run x\n"


def test_verbose_shows_everything(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    with run_output(_cfg(tmp_path, verbose=True)):
        print("a library's own print")
    assert capsys.readouterr().out == "a library's own print\n"


@pytest.mark.parametrize("env, config, expected", [
    (None, False, False), (None, True, True), ("1", False, True), ("0", True, False), ("true", False, True)])
def test_factory_verbose_wins_over_the_config(monkeypatch, env, config, expected):
    if env is None:
        monkeypatch.delenv(VERBOSE_ENV, raising=False)
    else:
        monkeypatch.setenv(VERBOSE_ENV, env)
    assert is_verbose(OmegaConf.create({"verbose": config})) is expected


URL = "http://alice:s3cr3t@tracking.example:5000/#/experiments/1"


def test_credentials_printed_or_logged_during_a_run_are_masked_in_train_log(tmp_path, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    with run_output(_cfg(tmp_path)):
        print(f"View run gentle-cat at: {URL}")  # MLflow's line at the end of a run
        logging.getLogger("mlflow.tracking").info("tracking at %s", URL)
        try:
            raise ConnectionError(f"cannot reach {URL}")
        except ConnectionError:
            logging.getLogger("factory.tracking").exception("publishing failed")
    log = (tmp_path / RUN_LOG).read_text()
    assert "s3cr3t" not in log
    assert log.count("alice:***@tracking.example") == 3  # the print, the record, the traceback's exception line


def test_factory_warnings_show_in_a_quiet_run_and_library_warnings_do_not(tmp_path, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    with recording_console() as seen, run_output(_cfg(tmp_path)):
        logging.getLogger("factory.distributed.precision").warning("bf16-mixed is not supported: 32-true")
        logging.getLogger("pytorch_lightning.trainer").warning("a library's warning")
        logging.getLogger("factory.printed.stderr").warning("a library's print")
    assert seen == ["bf16-mixed is not supported: 32-true"]


def test_a_handler_made_on_a_redirected_stream_gets_the_real_one_back():
    """DeepSpeed makes StreamHandler(sys.stdout) at its first import; imported inside a quiet block it
    would keep writing into that block's discarded stream for the rest of the process."""
    library = logging.getLogger("a_library_that_prints")
    try:
        for block, stream in ((printed_to_log("factory.test"), "stdout"),
                              (printed_lines_logged("stdout", "factory.test"), "stdout"),
                              (printed_lines_logged("stderr", "factory.test"), "stderr")):
            real = getattr(sys, stream)
            with block:
                library.addHandler(logging.StreamHandler(getattr(sys, stream)))
            assert [h.stream for h in library.handlers] == [real], block
            library.handlers.clear()
    finally:
        library.handlers.clear()
