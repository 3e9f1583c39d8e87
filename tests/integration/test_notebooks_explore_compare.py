"""notebooks/01_explore_data.ipynb and notebooks/compare_runs.ipynb execute and draw what they promise."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tests.conftest import REPO
from tests.integration.helpers import run_dirs, run_script

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
