"""The notebooks in notebooks/: stored clean, parameterized, and executing top to bottom."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tests.conftest import REPO
from tests.integration.helpers import run_script

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
TINY_FRAUD = ["experiment=fraud_detection", "logger=csv", "data.source.rows=3000", "trainer.max_epochs=2",
              "data.batch_size=512"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_clean_with_a_parameters_cell(path: Path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "factory"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "committed with outputs"
    (parameters,) = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    # Plain values only: every statement assigns a literal.
    for line in parameters.source.splitlines():
        statement = line.split("#", 1)[0].strip()
        if statement:
            name, value = statement.split("=", 1)
            assert name.strip().isidentifier()
            compile(value.strip(), path.name, "eval")


def _images(notebook: Path) -> int:
    nb = nbformat.read(notebook, as_version=4)
    return sum("image/png" in output.get("data", {}) for cell in nb.cells if cell.cell_type == "code"
               for output in cell.outputs)


def test_train_and_evaluate_notebook_runs_and_makes_a_cli_style_run(tmp_path, isolated_env):
    import papermill

    out = tmp_path / "executed.ipynb"
    papermill.execute_notebook(str(REPO / "notebooks/02_train_and_evaluate.ipynb"), str(out),
                               parameters={"overrides": TINY_FRAUD}, kernel_name="factory",
                               cwd=str(tmp_path), progress_bar=False)
    assert _images(out) >= 3  # learning curves, confusion matrix, PR and ROC curves
    (manifest,) = list((isolated_env / "outputs" / "fraud_detection").glob("*/run.json"))
    record = json.loads(manifest.read_text())
    assert record["status"] == "completed" and record["data"]["source"] == "fraud"


def test_run_report_renders_every_section_for_a_finished_run(tmp_path):
    trained = run_script(tmp_path, "train.py", *TINY_FRAUD)
    assert trained.returncode == 0, trained.stderr[-2000:]
    (run_dir,) = [p.parent for p in (tmp_path / "outputs").rglob("run.json")]
    reported = run_script(tmp_path, "report.py", "report=run_report", f"report.parameters.run_dir={run_dir}")
    assert reported.returncode == 0, reported.stderr[-2000:]
    (html,) = list((tmp_path / "reports" / "run_report").glob("*/report.html"))
    text = html.read_text()
    for section in ("Config and lineage", "Metrics", "Learning curves", "Predictions", "Metrics by segment",
                    "Data summary"):
        assert section in text
    # Learning curves, confusion matrix, ROC, PR, calibration, score distribution, segments.
    assert text.count("data:image/png;base64") >= 7
    index = json.loads((tmp_path / "reports" / "index.json").read_text())
    assert index["runs"][0]["status"] == "completed"
    assert index["runs"][0]["source_run_ids"] == [run_dir.name]
