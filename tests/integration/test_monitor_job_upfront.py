"""The monitor job's checks that need no scan of the window: an unknown sensitive column is named
from the first batch's schema (and the labels' columns), before any batch is judged."""
from __future__ import annotations

import pytest

from factory.errors import DataError
from factory.monitoring.drift import DriftMonitor
from tests.integration.test_monitor_job import calm, monitor, root  # noqa: F401 - fixtures

__all__ = ["root", "calm"]


def test_an_unknown_sensitive_column_is_named_before_the_window_is_scanned(root, calm, tmp_path, monkeypatch):  # noqa: F811
    judged = []
    monkeypatch.setattr(DriftMonitor, "update", lambda self, batch: judged.append(batch.num_rows))
    with pytest.raises(DataError, match=r"sensitive=nope: no such column in the window or the labels \(columns: .*amount"):
        monitor(root, tmp_path, f"serving_dir={calm}", "sensitive=nope", "batch_rows=500")
    assert judged == []  # not one batch folded in
