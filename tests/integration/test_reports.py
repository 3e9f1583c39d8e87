"""Reports end to end: papermill runs tests/notebooks/tiny_report.ipynb in the project's kernel."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from omegaconf import OmegaConf

from factory.reports import ReportFailed, run_report, run_reports_after_training, to_spec
from factory.reports.spec import ReportError, ReportSpec
from tests.conftest import REPO
from tests.integration.helpers import run_script

TINY = REPO / "tests" / "notebooks" / "tiny_report.ipynb"
TINY_CLI = ["report=run_report", f"report.notebook={TINY}"]


def tiny(**parameters) -> ReportSpec:
    return ReportSpec(name="tiny", notebook=TINY, parameters=parameters, timeout=60)


def index(reports: Path) -> list[dict]:
    return json.loads((reports / "index.json").read_text())["runs"]


def test_report_writes_notebook_html_and_index(tmp_path: Path):
    run_dir = tmp_path / "outputs" / "x" / "2026-01-01_00-00-00_abcdef"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_dir.name}))
    result = run_report(tiny(message="from the test", run_dir=str(run_dir)), tmp_path / "reports")

    assert result.status == "completed" and result.error is None
    assert result.output_dir.parent == tmp_path / "reports" / "tiny"
    nb = nbformat.read(result.ipynb, as_version=4)
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "message: from the test" in outputs and "done" in outputs
    meta = nb.metadata["factory"]
    assert meta["parameters"]["message"] == "from the test"
    assert meta["source_run_ids"] == [run_dir.name]
    assert meta["factory_version"] and "git" in meta
    assert nb.metadata["kernelspec"]["name"] == "factory"
    html = result.html.read_text()
    assert "message: from the test" in html and "data:image/png;base64," in html

    [entry] = index(tmp_path / "reports")
    assert entry["status"] == "completed" and entry["name"] == "tiny"
    assert entry["html"] == str(result.html.relative_to(tmp_path / "reports"))
    assert entry["source_run_ids"] == [run_dir.name] and entry["duration_s"] > 0
    page = (tmp_path / "reports" / "index.html").read_text()
    assert "completed" in page and entry["html"] in page


def test_failing_cell_names_cell_and_error_and_keeps_partial_notebook(tmp_path: Path):
    with pytest.raises(ReportFailed) as raised:
        run_report(tiny(fail=True), tmp_path / "reports")
    result = raised.value.result
    # cells: markdown, parameters, injected parameters, image, the failing one
    assert result.failing_cell == 4
    assert "ValueError: planted failure" in result.error and "cell 4" in result.error
    nb = nbformat.read(result.ipynb, as_version=4)
    texts = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "message: hello" in texts and "done" not in texts  # ran up to the failure, kept
    assert result.html.exists()
    [entry] = index(tmp_path / "reports")
    assert entry["status"] == "failed" and "planted failure" in entry["error"] and entry["failing_cell"] == 4
    assert "planted failure" in (tmp_path / "reports" / "index.html").read_text()


def test_cell_past_the_timeout_fails_the_report(tmp_path: Path):
    spec = tiny(sleep_s=60)
    spec.timeout = 3
    result = run_report(spec, tmp_path / "reports", check=False)
    assert result.status == "failed" and "timed out" in result.error
    assert result.failing_cell == 4 and "cell 4" in result.error
    nb = nbformat.read(result.ipynb, as_version=4)
    assert "CellTimeoutError" in nb.cells[4].outputs[-1]["text"]
    assert index(tmp_path / "reports")[0]["status"] == "failed"


def test_kernel_that_dies_fails_the_report(tmp_path: Path, monkeypatch):
    import os

    spec = tiny(fail=False)
    # Kill the kernel from the message cell: the os module is there, _exit skips cleanup.
    spec.parameters = {"message": "bye", "sleep_s": 0}
    source = nbformat.read(TINY, as_version=4)
    source.cells[3].source = "import os\nos._exit(1)"
    notebook = tmp_path / "dies.ipynb"
    nbformat.write(source, notebook)
    spec.notebook = notebook
    result = run_report(spec, tmp_path / "reports", check=False)
    assert result.status == "failed" and "DeadKernelError" in result.error, result.error
    assert result.ipynb.exists() and index(tmp_path / "reports")[0]["status"] == "failed"
    assert os.environ.get("FACTORY_PROGRESS_BAR") is None  # the kernel's environment is not left behind


def test_kernel_runs_the_notebooks_atexit_hooks_when_the_report_ends(tmp_path: Path):
    # The kernel skips interpreter finalization after its atexit hooks (KERNEL_ARGS): hooks the
    # notebook registers (wandb finishing a run, say) must still run.
    marker = tmp_path / "atexit.txt"
    source = nbformat.read(TINY, as_version=4)
    source.cells[4].source = ("import atexit, pathlib\n"
                              f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'ran')\nprint('done')")
    notebook = tmp_path / "hook.ipynb"
    nbformat.write(source, notebook)
    spec = tiny()
    spec.notebook = notebook
    assert run_report(spec, tmp_path / "reports").status == "completed"
    assert marker.read_text() == "ran"


def test_index_lists_runs_newest_first(tmp_path: Path):
    first = run_report(tiny(), tmp_path / "reports")
    second = run_report(tiny(fail=True), tmp_path / "reports", check=False)
    ids = [e["run_id"] for e in index(tmp_path / "reports")]
    assert ids == [second.run_id, first.run_id]


def test_reports_after_training_run_on_the_run(tmp_path: Path):
    run_dir = tmp_path / "outputs" / "train" / "run1"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": "run1", "status": "completed"}))
    cfg = OmegaConf.create({
        "paths": {"root_dir": str(tmp_path), "output_dir": str(tmp_path / "outputs")},
        "report": {"name": "tiny", "notebook": str(TINY), "required": ["run_dir"],
                   "parameters": {"run_dir": None, "message": "${paths.output_dir}"}},
    })
    [result] = run_reports_after_training(cfg, run_dir)
    assert result.status == "completed"
    entry = index(tmp_path / "reports")[0]
    assert entry["trigger"] == "training" and entry["parameters"]["run_dir"] == str(run_dir)
    assert entry["parameters"]["message"] == str(tmp_path / "outputs")


def test_a_report_that_cannot_run_on_a_run_leaves_the_run_completed(tmp_path: Path):
    # sweep_report takes a sweep_dir, not a run_dir: after a single run it cannot be built.
    done = run_script(tmp_path, "train.py", "experiment=diagnosis", "logger=csv", "trainer.max_epochs=1",
                      "report=sweep_report")
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = [p.parent for p in (tmp_path / "outputs").rglob("run.json")]
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert "reports on run" in done.stderr + done.stdout


def test_missing_required_parameter_and_bad_cron_are_named():
    node = OmegaConf.create({"name": "t", "notebook": str(TINY), "required": ["run_dir"],
                             "parameters": {"run_dir": None}, "schedule": "every day"})
    with pytest.raises(ReportError) as raised:
        to_spec(node)
    assert str(raised.value).splitlines() == [
        "report.parameters.run_dir: missing required value (set report.parameters.run_dir=...)",
        "report.schedule: 'every day': expected 5 fields (minute hour day-of-month month day-of-week)"]


# --- the CLI ---------------------------------------------------------------------

def _fake_run(root: Path, name: str) -> None:
    (root / name).mkdir()
    (root / name / "run.json").write_text(json.dumps({"run_id": name, "status": "completed"}))


def test_cli_runs_a_report(tmp_path: Path):
    _fake_run(tmp_path, "somewhere")  # a report's run_dir must exist before the kernel starts
    done = run_script(tmp_path, "report.py", *TINY_CLI, "report.parameters.run_dir=somewhere",
                      "report.hide_input=true")
    assert done.returncode == 0, done.stderr
    [entry] = index(tmp_path / "reports")
    assert entry["status"] == "completed" and entry["parameters"]["run_dir"] == "somewhere"
    html = (tmp_path / "reports" / entry["html"]).read_text()
    assert "print(f" not in html  # inputs hidden
    assert not (tmp_path / "outputs").exists()  # Hydra wrote nothing of its own


def test_cli_failing_cell_exits_1_naming_the_cell(tmp_path: Path):
    _fake_run(tmp_path, "x")
    done = run_script(tmp_path, "report.py", *TINY_CLI, "report.parameters.run_dir=x", "+report.parameters.fail=true")
    assert done.returncode == 1
    assert "error: report run_report failed: cell 4" in done.stderr and "ValueError: planted failure" in done.stderr
    assert index(tmp_path / "reports")[0]["status"] == "failed"


@pytest.mark.parametrize("overrides,message", [
    (["report=nope"], "error: report/nope: no such config (available: champion_challenger, compare_runs, lm_report, monitor, run_report"),
    (["report.parameters.run_dir=x", "report.notebook=notebooks/missing.ipynb"],
     "error: report.notebook: notebooks/missing.ipynb: no such notebook"),
    ([f"report.notebook={TINY}"], "error: report.parameters.run_dir: missing required value"),
    ([f"report.notebook={TINY}", "report.parameters.run_dir=x", "report.schedule='61 * * * *'"],
     "error: report.schedule: '61 * * * *': not a valid cron expression"),
    ([f"report.notebook={TINY}", "report.parameters.run_dir=x", "report.timeout=soon"],
     "error: report.timeout:"),
    (["report=sweep_report"], "error: report.parameters.sweep_dir: missing required value"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, overrides, message):
    done = run_script(tmp_path, "report.py", *overrides)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert not (tmp_path / "reports").exists()


def test_schedule_cli_bad_input_and_crontab(tmp_path: Path):
    done = run_script(tmp_path, "schedule.py", "--report", "nope", "--crontab")
    assert done.returncode == 2
    assert "error: report nope (conf/report/nope.yaml): report=nope: no such report" in done.stderr
    done = run_script(tmp_path, "schedule.py", "--once")
    assert done.returncode == 0  # nothing in conf/report/ has a schedule yet: nothing due
