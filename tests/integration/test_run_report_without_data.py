"""The run report of a run whose data is gone: a real tiny run on a CSV, the CSV deleted, the report
rendered by papermill in the project's kernel. It completes, shows its summary, and each section that
needs the data says in one line why it is absent."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from factory.reports import run_report, to_spec
from factory.reports.spec import compose_report
from tests.integration.test_run_report_document import _train, visible_text

pytestmark = pytest.mark.slow  # a tiny run (~5 s) and a report (~15 s)


def test_run_report_of_a_run_whose_csv_was_deleted_completes_and_says_why(tmp_path: Path):
    run_dir = _train(tmp_path, "regression")
    (tmp_path / "table.csv").unlink()

    spec = to_spec(compose_report("run_report", [f"report.parameters.run_dir={run_dir}"]).report)
    result = run_report(spec, tmp_path / "reports")
    text = visible_text(result.html.read_text())
    assert "Traceback" not in text and "NaN" not in text
    assert re.search(r"completed: test loss [\d.]+", text), text[:1500]  # the summary, from the run's records
    assert ", regression; model: TabularMLP" in text  # the task from the checkpoint, the data gone
    # Predictions, metrics by segment and the data summary need the rows: each says why they are absent
    why = f"data not available: no such file or directory: {tmp_path / 'table.csv'}"
    assert text.count(why) == 3, text
    assert "Learning curves" in text and "rows of the test split" not in text
