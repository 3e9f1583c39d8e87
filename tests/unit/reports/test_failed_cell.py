"""A failed report cell is named by the line a reader finds it by, not by a magic or a comment."""
from __future__ import annotations

from pathlib import Path

import pytest
from papermill.exceptions import PapermillExecutionError

from factory.reports.execute import describe_failure, first_statement


@pytest.mark.parametrize("source, expected", [
    ("%matplotlib inline\nimport pandas as pd\nrun = load(run_dir)", "import pandas as pd"),
    ("\n  # the model's scores\n\n%%time\n!pip list\npredictions = run.predictions(split)",
     "predictions = run.predictions(split)"),
    ("x = 1  # a comment after code is code", "x = 1  # a comment after code is code"),
    ("%matplotlib inline\n# only a magic and a comment", "%matplotlib inline"),  # nothing else: the first line
    ("", ""),
    (None, ""),
])
def test_first_statement_skips_blank_lines_comments_and_magics(source, expected):
    assert first_statement(source) == expected


def test_a_failed_cell_is_named_by_number_and_first_statement(tmp_path: Path):
    error = PapermillExecutionError(cell_index=4, exec_count=3, ename="ValueError", evalue="unknown task 'x'",
                                    source="%matplotlib inline\n\nplots.diagnostics(p, task)", traceback=[])
    text, cell = describe_failure(error, tmp_path / "report.ipynb")
    assert cell == 4
    assert text == "cell 4 (execution count 3) `plots.diagnostics(p, task)`: ValueError: unknown task 'x'"
