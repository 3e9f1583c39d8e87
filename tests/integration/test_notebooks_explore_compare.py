"""notebooks/01_explore_data.ipynb and notebooks/compare_runs.ipynb execute and draw what they promise."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tests.conftest import REPO
from tests.integration.helpers import manifest, run_dirs, run_script

# The sweep compare_runs is tested on: two 2-epoch runs that differ only in dropout.
TINY_SWEEP = ["experiment=diagnosis", "logger=csv", "trainer.max_epochs=2", "model.net.dropout=0.1,0.3", "-m"]


def _execute(tmp_path: Path, notebook: str, name: str, **parameters) -> nbformat.NotebookNode:
    import papermill

    out = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(str(REPO / "notebooks" / notebook), str(out), parameters=parameters,
                               kernel_name="factory", cwd=str(tmp_path), progress_bar=False)
    return nbformat.read(out, as_version=4)


def _outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]


def _images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {}) for output in _outputs(nb))


def _text(nb: nbformat.NotebookNode) -> str:
    return "\n".join(output.get("text", "") + output.get("data", {}).get("text/plain", "")
                     for output in _outputs(nb))


@pytest.mark.parametrize(("overrides", "images", "target"), [
    # class balance, histograms, correlation; no categoricals, nothing missing
    (["data=breast_cancer"], 3, "target"),
    # ... plus categorical levels and missing values
    (["data=fraud", "data.source.rows=2000"], 5, "is_fraud"),
], ids=["breast_cancer", "fraud"])
def test_explore_data_notebook_draws_every_section(tmp_path, overrides, images, target):
    nb = _execute(tmp_path, "01_explore_data.ipynb", "explore", overrides=overrides)
    assert _images(nb) == images
    schema_table = next(o["data"]["text/plain"] for o in _outputs(nb)
                        if "missing %" in o.get("data", {}).get("text/plain", ""))
    assert target in schema_table and "distinct" in schema_table


@pytest.mark.slow
def test_compare_runs_notebook_plots_the_metric_against_the_swept_hyperparameter(tmp_path):
    trained = run_script(tmp_path, "train.py", *TINY_SWEEP)
    assert trained.returncode == 0, trained.stderr[-2000:]
    runs = run_dirs(tmp_path)
    assert len(runs) == 2
    sweep = runs[0].parent

    for mode, parameters in {"experiment": {"experiment": "diagnosis"}, "sweep": {"sweep_dir": str(sweep)}}.items():
        nb = _execute(tmp_path, "compare_runs.ipynb", mode, **parameters)
        # metric per run, learning curves, metric vs hyperparameter
        assert _images(nb) == 3, mode
        text = _text(nb)
        assert "model.net.dropout" in text and "val/loss" in text, mode  # diagnosis monitors val/loss

    nb = _execute(tmp_path, "compare_runs.ipynb", "single", run_ids=[str(runs[0])])
    assert _images(nb) == 0
    assert "nothing to compare" in _text(nb)

    # report=sweep_report on a sweep.json written here: the two real runs and a failed trial.
    journal = tmp_path / "journal"
    journal.mkdir()
    trials = [{"number": i, "overrides": [f"model.net.dropout={d}"], "params": {"model.net.dropout": d},
               "status": "completed", "value": manifest(run)["monitor"]["best"], "run_dir": str(run),
               "run_id": run.name, "error": None, "started_at": None, "finished_at": None}
              for i, (d, run) in enumerate(zip((0.1, 0.3), runs))]
    trials.append({"number": 2, "overrides": ["model.net.dropout=0.9"], "params": {"model.net.dropout": 0.9},
                   "status": "failed", "value": None, "run_dir": None, "run_id": None,
                   "error": "ValueError: loss is NaN", "started_at": None, "finished_at": None})
    (journal / "sweep.json").write_text(json.dumps({
        "version": 1, "sweep_dir": str(journal), "kind": "grid", "command": "python scripts/train.py -m ...",
        "objective": {"metric": "val/loss", "mode": "min"}, "status": "completed", "updated_at": None,
        "trials": trials, "best": None}))
    done = run_script(tmp_path, "report.py", "report=sweep_report", f"report.parameters.sweep_dir={journal}")
    assert done.returncode == 0, done.stderr[-2000:]
    (html,) = (tmp_path / "reports" / "sweep_report").glob("*/report.html")
    page = html.read_text()
    assert page.count('src="data:image/png;base64') == 3  # objective per trial, curves, objective vs dropout
    assert "ValueError: loss is NaN" in page and "trials failed" in page and "model.net.dropout" in page
    entry = json.loads((tmp_path / "reports" / "index.json").read_text())["runs"][0]
    assert entry["status"] == "completed" and entry["source_run_ids"] == [r.name for r in runs]

    done = run_script(tmp_path, "report.py", "report=sweep_report", f"report.parameters.sweep_dir={tmp_path}/nope")
    # Checked before a kernel starts: bad input, one line, exit 2, nothing indexed.
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: report.parameters.sweep_dir: {tmp_path}/nope: no such directory"), errors
    assert len(json.loads((tmp_path / "reports" / "index.json").read_text())["runs"]) == 1
