"""A DataModule set up only to look (``persist = False``: scripts/plan.py) curates as a run would and writes nothing."""
from __future__ import annotations

from factory.data.datamodule import TabularDataModule
from tests.unit.data.test_curation_datamodule import RULES
from tests.unit.data.test_datamodule import TableSource, _table


def test_a_looking_setup_writes_no_snapshot_and_no_quarantine(tmp_path):
    store = tmp_path / "store"
    kept = TabularDataModule(TableSource(_table(n=300)), curation={**RULES, "max_quarantine": 0.2, "store": str(store)})
    kept.persist = False
    kept.setup("fit")
    assert not store.exists()
    assert kept.quarantine_path is None and kept.curation_report["quarantined"] == 28
    run = TabularDataModule(TableSource(_table(n=300)), curation={**RULES, "max_quarantine": 0.2, "store": str(store)})
    run.setup("fit")  # the same data as a run sees it: same id and fingerprint, now stored
    assert (run.snapshot_id, run.fingerprint, run.split_sizes) == (kept.snapshot_id, kept.fingerprint, kept.split_sizes)
    assert (store / "snapshots" / run.snapshot_id).is_dir()
