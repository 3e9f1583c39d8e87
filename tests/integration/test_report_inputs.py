"""Report inputs checked before a kernel starts: run paths, the `parameters` tag, a failed run said up front."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from factory.reports import run_report
from factory.reports.spec import ReportError, ReportSpec
from tests.conftest import REPO, script_env
from tests.integration.helpers import run_dirs, run_script

TINY = REPO / "tests" / "notebooks" / "tiny_report.ipynb"


def _untagged(tmp_path: Path) -> Path:
    nb = nbformat.read(TINY, as_version=4)
    nb.cells[1].metadata.pop("tags")  # the parameters cell, untagged: values would land before it
    path = tmp_path / "untagged.ipynb"
    nbformat.write(nb, path)
    return path


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("key,value", [("run_dir", "outputs/diagnosis/no-such-run"), ("run_dir", "abc123")])
def test_report_on_a_missing_run_is_one_line_exit_2_before_any_kernel(tmp_path: Path, key, value):
    done = run_script(tmp_path, "report.py", "report=run_report", f"report.parameters.{key}={value}")
    assert done.returncode == 2
    line = _one_error_line(done.stderr)
    assert line.startswith(f"error: report.parameters.{key}: {value}: no such run directory")
    assert "matplotlib" not in done.stderr + done.stdout
    assert not (tmp_path / "reports").exists()  # no kernel, no output directory, no index entry


def test_missing_sweep_dir_is_named(tmp_path: Path):
    done = run_script(tmp_path, "report.py", "report=sweep_report", "report.parameters.sweep_dir=multirun/nope")
    assert done.returncode == 2
    assert _one_error_line(done.stderr) == "error: report.parameters.sweep_dir: multirun/nope: no such directory"


def test_notebook_without_parameters_tag_is_refused(tmp_path: Path):
    notebook = _untagged(tmp_path)
    run = tmp_path / "run1"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"run_id": "run1", "status": "completed"}))
    done = run_script(tmp_path, "report.py", "report=run_report", f"report.notebook={notebook}",
                      f"report.parameters.run_dir={run}")
    assert done.returncode == 2
    line = _one_error_line(done.stderr)
    assert line.startswith(f"error: report.notebook: {notebook}: no cell tagged `parameters`")
    assert not (tmp_path / "reports").exists()
    # The API refuses it too, recording nothing as completed.
    spec = ReportSpec(name="untagged", notebook=notebook, parameters={"message": "hi"}, timeout=60)
    with pytest.raises(ReportError, match="no cell tagged `parameters`"):
        run_report(spec, tmp_path / "reports")
    assert not (tmp_path / "reports").exists()


def test_report_on_a_failed_run_says_so_up_front(tmp_path: Path):
    done = run_script(tmp_path, "train.py", "experiment=diagnosis", "logger=csv", "trainer.max_epochs=1")
    assert done.returncode == 0, done.stderr[-2000:]
    [run] = run_dirs(tmp_path)
    # What a run that failed after its first epoch records: status, error, no checkpoints.
    record = json.loads((run / "run.json").read_text())
    record.update(status="failed", error="RuntimeError: the data loader died", best_checkpoint=None,
                  last_checkpoint=None)
    (run / "run.json").write_text(json.dumps(record))
    for checkpoint in (run / "checkpoints").glob("*.ckpt"):
        checkpoint.unlink()

    done = run_script(tmp_path, "report.py", "report=run_report", f"report.parameters.run_dir={run}")
    status_line = f"run {record['run_id']} is failed: RuntimeError: the data loader died"
    output = done.stdout + done.stderr
    assert f"report run_report: {status_line}" in output, output  # said once, before the kernel starts
    assert done.returncode == 0, output  # sections without a checkpoint say so; the report completes
    assert output.count(status_line) == 1
    assert done.stdout.index(status_line) < done.stdout.index("Output Notebook")  # before the kernel
    entry = json.loads((tmp_path / "reports" / "index.json").read_text())["runs"][0]
    html = (tmp_path / "reports" / entry["html"]).read_text()
    assert html.index("This run is failed") < html.index("Config and lineage")  # at the top of the report
    assert "no checkpoint: the run left none (it is failed)" in html and "Traceback" not in html


def test_report_runs_from_inside_a_finished_run_directory(tmp_path: Path):
    """A report writes under reports_dir: a finished run in the launch directory is what it reads, not taken."""
    run = tmp_path / "outputs" / "diagnosis" / "run1"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run_id": "run1", "status": "completed"}))
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "report.py"), "report=run_report",
                           f"report.notebook={TINY}", "report.parameters.run_dir=."], capture_output=True,
                          text=True, env=script_env(tmp_path), cwd=run, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [report] = (tmp_path / "reports" / "run_report").glob("*/report.html")
    assert "message: hello" in report.read_text()
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]  # nothing written into the run
