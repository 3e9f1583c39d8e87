"""An output directory that cannot be created: one line naming the key, the path and why; exit 2.

Tests run as root, so a read-only directory cannot be simulated with chmod: /proc (no new
directories) and a path under a regular file stand for every such case.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.helpers import FAST_FRAUD, run_script


def _one_line_exit_2(result, key: str, value: str, why: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"error: {key}={value}: cannot create "), lines[0]
    assert why in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def _blocked(tmp_path: Path) -> tuple[str, str]:
    """A path under a regular file, and the reason the error must give."""
    (tmp_path / "afile").write_text("not a directory\n")
    return str(tmp_path / "afile" / "runs"), f"{tmp_path / 'afile'} is a file, not a directory"


@pytest.mark.parametrize("case", ["proc", "under_file", "is_file"])
def test_train_output_dir(tmp_path, case):
    if case == "proc":
        value, why = "/proc/forbidden", "/proc refuses new directories"
    elif case == "under_file":
        value, why = _blocked(tmp_path)
    else:
        value, why = _blocked(tmp_path)
        value = str(tmp_path / "afile")
    result = run_script(tmp_path, "train.py", *FAST_FRAUD, f"paths.output_dir={value}")
    _one_line_exit_2(result, "paths.output_dir", value, why)
    assert not list(tmp_path.rglob("run.json"))


def test_sweep_output_dir(tmp_path):
    value, why = _blocked(tmp_path)
    result = run_script(tmp_path, "train.py", "-m", *FAST_FRAUD, f"paths.output_dir={value}", "seed=1,2")
    _one_line_exit_2(result, "paths.output_dir", value, why)
    assert not list(tmp_path.rglob("sweep.json"))


def test_evaluate_output_dir(tmp_path):
    trained = run_script(tmp_path, "train.py", *FAST_FRAUD, "data.source.rows=1000", "trainer.max_epochs=1")
    assert trained.returncode == 0, trained.stderr[-2000:]
    (checkpoint,) = (tmp_path / "outputs").rglob("best.ckpt")
    for value, why in (("/proc/forbidden", "/proc refuses new directories"), _blocked(tmp_path)):
        result = run_script(tmp_path, "evaluate.py", f"ckpt_path={checkpoint}", f"paths.output_dir={value}")
        _one_line_exit_2(result, "paths.output_dir", value, why)
    assert len(list(tmp_path.rglob("run.json"))) == 1  # the training run's only


def test_report_dir(tmp_path):
    for value, why in (("/proc/forbidden", "/proc refuses new directories"), _blocked(tmp_path)):
        result = run_script(tmp_path, "report.py", "report=run_report",
                            f"report.parameters.run_dir={tmp_path}", f"reports_dir={value}")
        _one_line_exit_2(result, "reports_dir", value, why)


def test_run_dir_moved_out_of_output_dir(tmp_path):
    value, why = _blocked(tmp_path)
    result = run_script(tmp_path, "train.py", *FAST_FRAUD, f"paths.run_dir={value}/run")
    _one_line_exit_2(result, "paths.run_dir", f"{value}/run", why)
