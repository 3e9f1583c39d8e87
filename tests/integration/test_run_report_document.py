"""The run report read as a document: real tiny runs of each task, reported by papermill in the project's
kernel, the HTML checked for what a reader sees (summary, folded config, no code, NaN, figure reprs or
tracebacks), and scripts/report.py's console lines."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factory.reports import run_report, to_spec
from factory.reports.spec import compose_report
from tests.integration.helpers import check_reads_as_a_document, run_script, visible_text

pytestmark = pytest.mark.slow  # a tiny run (~5 s) and a report (~15 s) each

TASKS = {
    "binary": ["experiment=diagnosis"],  # has two baselines, which log no loss
    "multiclass": ["experiment=digits"],
    "regression": ["data=files", "data.source.target=y", "data.source.task=regression", "task_name=regression"],
}


def _train(root: Path, task: str) -> Path:
    from factory import compose, train

    overrides = [*TASKS[task], "logger=csv", "trainer.max_epochs=2"]
    if task == "regression":  # a 300-row CSV with a categorical column and missing values
        rng = np.random.default_rng(0)
        frame = pd.DataFrame({"x1": rng.normal(size=300), "x2": rng.normal(size=300),
                              "region": rng.choice(["north", "south"], 300)})
        frame["y"] = 2 * frame.x1 - frame.x2 + rng.normal(scale=0.3, size=300)
        frame.loc[::17, "x2"] = np.nan
        frame.to_csv(root / "table.csv", index=False)
        overrides.append(f"data.source.path={root / 'table.csv'}")
    return Path(train(compose("train", overrides)).run_dir)


# multiclass: the digits run report of tests/integration/test_report_browser.py, built once for the browser
@pytest.mark.parametrize("task, first_line, images", [
    ("regression", r"completed: test loss [\d.]+", 3),  # curves, predicted vs actual, residuals
])
def test_run_report_of_each_task_reads_as_a_document(tmp_path: Path, task: str, first_line: str, images: int):
    run_dir = _train(tmp_path, task)
    spec = to_spec(compose_report("run_report", [f"report.parameters.run_dir={run_dir}"]).report)
    assert spec.hide_input  # by default
    result = run_report(spec, tmp_path / "reports")
    html = result.html.read_text()
    check_reads_as_a_document(html, first_line, run_dir)
    assert html.count("data:image/png;base64") >= images
    text = visible_text(html)
    assert "y mean" in text and "x2" in text  # the target's spread; the column with missing values


def test_run_report_cli_on_a_binary_run_prints_each_line_once(tmp_path: Path):
    run_dir = _train(tmp_path, "binary")
    done = run_script(tmp_path, "report.py", "report=run_report", f"report.parameters.run_dir={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    console = done.stdout + done.stderr
    assert "NotebookNode" not in console and "Input Notebook:  notebooks/run_report.ipynb" in console
    assert len(re.findall(r"completed", console)) == 1, console
    assert "Alternative text" not in console and "IPKernelApp" not in console, console
    [html] = (tmp_path / "reports" / "run_report").glob("*/report.html")
    assert f"  {html}" in done.stdout.splitlines()
    # the monitored loss first; the baselines have none, so a metric they have beside it; no NaN for their loss
    headline = (r"completed: test loss \d\.\d{1,4}; test \w+ \d\.\d{1,4} "
                r"\(logistic regression \d\.\d{1,4}, gradient boosting \d\.\d{1,4}\)")
    check_reads_as_a_document(html.read_text(), headline, run_dir)
    assert "—" in visible_text(html.read_text())
