"""The compare report on two real runs that differ in their logger and in one hyperparameter: it
completes, compares only the hyperparameter, and reads as a document (no traceback, NaN or run "0")."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from factory import compose
from factory.reports import run_report
from factory.reports.spec import spec_from_file
from factory.training.recipe import run
from tests.integration.helpers import run_dirs

pytestmark = pytest.mark.slow

RUNS = [["experiment=diagnosis", "logger=csv", "trainer.max_epochs=2"],
        ["experiment=diagnosis", "logger=tensorboard", "trainer.max_epochs=3"]]


def visible_text(page: str) -> str:
    """What a reader reads: the page without its styles, scripts and embedded images."""
    soup = BeautifulSoup(page, "html.parser")
    for hidden in soup(["style", "script", "img"]):
        hidden.decompose()
    return soup.get_text(" ")


def test_compare_report_on_runs_differing_in_logger_and_max_epochs(tmp_path: Path):
    for overrides in RUNS:
        run(compose("train", overrides))
    first, second = run_dirs(tmp_path)

    spec = spec_from_file("compare_runs", parameters={"run_ids": [str(first), str(second)]})
    result = run_report(spec, tmp_path / "reports", cwd=tmp_path)
    assert result.status == "completed", result.error
    page = result.html.read_text()
    text = visible_text(page)
    assert "Traceback" not in text and "NaN" not in text and "Error" not in text
    short = [d.name.rsplit("_", 1)[-1] for d in (first, second)]
    assert "Compare runs: diagnosis — 2 runs, metric val/loss (min)" in text
    assert page.count('src="data:image/png;base64') == 3  # metric per run, curves, metric vs max_epochs

    soup = BeautifulSoup(page, "html.parser")
    row_labels = [th.get_text(strip=True) for th in soup.select("tbody th")]
    column_labels = [th.get_text(strip=True) for th in soup.select("thead th")]
    assert set(short) <= set(row_labels) | set(column_labels)
    assert not {"0", "1"} & (set(row_labels) | set(column_labels))  # runs are named, not numbered
    assert "trainer.max_epochs" in column_labels
    assert not [label for label in column_labels + row_labels
                if label.startswith(("logger.", "report.", "model.scheduler.T_max"))]
    assert "max_epochs=3" in text  # the best run's setting, in the headline
    [entry] = json.loads((tmp_path / "reports" / "index.json").read_text())["runs"]
    assert entry["source_run_ids"] == [first.name, second.name]  # the index names the runs compared
