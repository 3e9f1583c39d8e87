"""factory.console: what a chatty library call prints goes to a log, and errors still propagate."""
from __future__ import annotations

import logging
import sys
import warnings

import pytest

from factory.console import notice, printed_lines_logged, printed_to_log


def test_printed_to_log_takes_prints_bars_warnings_and_own_handlers(capsys, caplog):
    from tqdm import tqdm

    deepspeed = logging.getLogger("DeepSpeed")  # as DeepSpeed sets it up: its own stdout handler, not propagating
    handler = logging.StreamHandler(sys.stdout)
    deepspeed.addHandler(handler)
    deepspeed.propagate, before = False, deepspeed.level
    deepspeed.setLevel(logging.INFO)
    try:
        with caplog.at_level(logging.DEBUG, logger="factory.rundir.checkpoints"):
            with printed_to_log("factory.rundir.checkpoints"):
                print("Processing zero checkpoint 'best.ckpt/checkpoint'")
                for _ in tqdm(range(2), desc="Loading checkpoint shards"):
                    pass
                warnings.warn("IProgress not found")
                deepspeed.info("Reconstructed fp32 state dict")
        assert deepspeed.level == logging.INFO  # given back
    finally:
        deepspeed.removeHandler(handler)
        deepspeed.propagate = True
        deepspeed.setLevel(before)
    assert capsys.readouterr() == ("", "")
    logged = caplog.text
    assert "Processing zero checkpoint" in logged and "Loading checkpoint shards" in logged
    assert "UserWarning: IProgress not found" in logged


def test_printed_to_log_lets_errors_through():
    streams = (sys.stdout, sys.stderr)
    with pytest.raises(ValueError, match="not a complete DeepSpeed checkpoint"):
        with printed_to_log("factory.rundir.checkpoints"):
            raise ValueError("not a complete DeepSpeed checkpoint")
    assert (sys.stdout, sys.stderr) == streams  # given back


def test_notice_reaches_the_console_while_stderr_is_logged(capsys, caplog):
    with caplog.at_level(logging.INFO, logger="factory.printed.stderr"):
        with printed_lines_logged("stderr", "factory.printed.stderr"):
            print("wandb: Run summary:", file=sys.stderr)
            notice("interrupted: SIGINT at epoch 1")
    assert capsys.readouterr().err == "interrupted: SIGINT at epoch 1\n"
    assert "wandb: Run summary:" in caplog.text and "interrupted" not in caplog.text
