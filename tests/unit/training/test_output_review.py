"""A quiet run's log and console: credentials masked, factory's own warnings shown, library handlers handed back."""
from __future__ import annotations

import logging
import sys

from omegaconf import OmegaConf

from factory.console import printed_lines_logged, printed_to_log
from factory.rundir.layout import RUN_LOG
from factory.training.output import VERBOSE_ENV, run_output

URL = "http://alice:s3cr3t@tracking.example:5000/#/experiments/1"


def _cfg(run_dir):
    return OmegaConf.create({"paths": {"run_dir": str(run_dir)}, "trainer": {"enable_progress_bar": False},
                             "verbose": False})


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
    seen: list[str] = []
    console = logging.StreamHandler(sys.stderr)  # as Hydra's console handler, made before the run
    console.emit = lambda record: seen.append(record.getMessage())
    root = logging.getLogger()
    root.addHandler(console)
    try:
        with run_output(_cfg(tmp_path)):
            logging.getLogger("factory.distributed.precision").warning("bf16-mixed is not supported: 32-true")
            logging.getLogger("pytorch_lightning.trainer").warning("a library's warning")
            logging.getLogger("factory.printed.stderr").warning("a library's print")
    finally:
        root.removeHandler(console)
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
