"""`latest:<task>` in a report's run parameters: the newest completed run of that task, found
when the report runs (check_inputs), not when its spec is read or its schedule printed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory.reports.spec import ReportError, ReportSpec, check_inputs, latest_completed_run
from tests.conftest import REPO

NOTEBOOK = REPO / "tests" / "notebooks" / "tiny_report.ipynb"


def _run(outputs: Path, task: str, run_id: str, started: str, status: str) -> Path:
    run_dir = outputs / task / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps(
        {"run_id": run_id, "task_name": task, "status": status, "started_at": started}))
    return run_dir


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    """fraud: an old completed run, a newer failed one; digits: the newest, completed."""
    out = tmp_path / "outputs"
    _run(out, "fraud", "2026-01-01_00-00-00_aaaaaa", "2026-01-01T00:00:00+00:00", "completed")
    _run(out, "fraud", "2026-01-02_00-00-00_bbbbbb", "2026-01-02T00:00:00.500+00:00", "completed")
    _run(out, "fraud", "2026-01-03_00-00-00_cccccc", "2026-01-03T00:00:00+00:00", "failed")
    _run(out, "digits", "2026-01-04_00-00-00_dddddd", "2026-01-04T00:00:00+00:00", "completed")
    return out


def test_the_newest_completed_run_of_the_task(outputs: Path):
    assert latest_completed_run("fraud", outputs).name == "2026-01-02_00-00-00_bbbbbb"
    assert latest_completed_run("digits", outputs).name == "2026-01-04_00-00-00_dddddd"
    assert latest_completed_run("nope", outputs) is None


def test_check_inputs_puts_the_run_in_the_parameters(outputs: Path, tmp_path: Path):
    spec = ReportSpec("r", NOTEBOOK, {"run_dir": "latest:fraud", "run_dirs": ["latest:digits", "x"]})
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "run.json").write_text(json.dumps({"run_id": "x", "status": "completed"}))
    assert check_inputs(spec, cwd=tmp_path) == []
    assert spec.parameters["run_dir"] == str(outputs.absolute() / "fraud" / "2026-01-02_00-00-00_bbbbbb")
    assert spec.parameters["run_dirs"] == [str(outputs.absolute() / "digits" / "2026-01-04_00-00-00_dddddd"), "x"]


def test_a_task_without_a_completed_run_is_one_line(outputs: Path, tmp_path: Path):
    spec = ReportSpec("r", NOTEBOOK, {"run_dir": "latest:nope"})
    with pytest.raises(ReportError) as info:
        check_inputs(spec, cwd=tmp_path)
    assert str(info.value) == (f"report.parameters.run_dir: latest:nope: no completed run of task 'nope' "
                               f"under {tmp_path}/outputs")
