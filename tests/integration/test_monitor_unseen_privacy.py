"""Unseen categorical values come from raw traffic (an email typed into a free-text field): the monitor
reports them as counts only, in monitor.json, the Prometheus files, the alerts, stdout and the report's tables."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from factory.monitoring import report_figures
from tests.integration.test_monitor_job import NAME, monitor_cli, root, traffic, write_log  # noqa: F401

__all__ = ["root"]

EMAIL = "alice@example.com"


def _planted(rows: int = 2000) -> pa.Table:
    """Traffic in which every fourth row's merchant category is an email address (an unseen level)."""
    table = traffic(rows=rows, seed=13)
    category = np.array(table["merchant_category"].to_pylist(), dtype=object)
    category[::4] = EMAIL
    return table.set_column(table.schema.get_field_index("merchant_category"), "merchant_category",
                            pa.array(category.tolist(), pa.string()))


def test_unseen_values_never_leave_the_monitor(root, tmp_path):  # noqa: F811
    serving = write_log(root, "serving-private", _planted())
    done = monitor_cli(root, tmp_path, f"serving_dir={serving}", "monitor.drift.unseen_rate=0.2")
    assert done.returncode == 3, done.stderr + done.stdout  # the unseen rate (25%) alerts
    assert EMAIL not in done.stdout + done.stderr
    (run_dir,) = (tmp_path / "monitor" / NAME).iterdir()
    files = [p for p in [*run_dir.rglob("*"), *(serving / NAME / "monitoring").rglob("*")] if p.is_file()]
    assert {p.name for p in files} >= {"monitor.json", "monitor.prom", "drift.prom"}
    for path in files:
        assert EMAIL not in path.read_text(errors="replace"), path
    record = json.loads((run_dir / "monitor.json").read_text())
    category = record["drift"]["features"]["merchant_category"]
    assert category["unseen_levels"] >= 1 and 0.2 < category["unseen_rate"] < 0.3 and "top_unseen" not in category
    assert any((a["subject"], a["figure"]) == ("merchant_category", "unseen_rate") for a in record["alerts"])
    tables = [report_figures.summary(record), report_figures.drift_table(record).to_string(),
              report_figures.alerts_table(record).to_string()]
    assert all(EMAIL not in text for text in tables)


def test_show_unseen_names_examples_cut_to_32_characters(root, tmp_path):  # noqa: F811
    serving = write_log(root, "serving-private-shown", _planted(1000))
    done = monitor_cli(root, tmp_path, f"serving_dir={serving}", "monitor.drift.unseen_rate=0.2",
                       "++monitor.drift.show_unseen=3")
    assert done.returncode == 3, done.stderr + done.stdout
    (path,) = (tmp_path / "monitor" / NAME).glob("*/monitor.json")
    shown = json.loads(path.read_text())["drift"]["features"]["merchant_category"]["top_unseen"]
    assert EMAIL in shown and all(len(level) <= 32 for level in shown)
