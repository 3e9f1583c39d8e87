"""Fairness without labels over a file the monitor scores itself: the two columns it keeps are enough,
and the versions seen (the scorer's ``model_version`` refs) read as version numbers."""
from __future__ import annotations

import pyarrow.parquet as pq

from factory.monitoring.summary import print_summary
from tests.integration.test_monitor_job import monitor, root, traffic  # noqa: F401 - root: the fixture

__all__ = ["root"]


def test_fairness_without_labels_on_an_unscored_file(root, tmp_path, capsys):  # noqa: F811
    table = traffic(rows=2000, seed=11, sensitive={"disparity": 2.0})
    pq.write_table(table.drop_columns(["is_fraud"]), tmp_path / "batch.parquet")  # no target: no labels at all
    record = monitor(root, tmp_path, f"input={tmp_path / 'batch.parquet'}", "sensitive=customer_age_band")
    fairness = record["fairness"]
    assert record["quality"] is None and fairness["equalized_odds_difference"] is None  # no labels
    assert set(fairness["groups"]) == {"18-29", "30-49", "50+"} and fairness["rows"] == 2000
    assert fairness["demographic_parity_difference"] is not None
    assert record["versions_seen"] == {"1": 2000}  # the scorer's model_version "fraud_detection@1"
    print_summary(record)
    assert "versions seen v1: 2,000" in " ".join(capsys.readouterr().out.split())
