"""The DataModule's curation: quarantine file, snapshot, replay, the share limit, access and encryption."""
from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.data.datamodule import TabularDataModule
from factory.data.fingerprint import table_fingerprint
from factory.errors import AccessError, DataError
from tests.unit.data.test_datamodule import TableSource, _table

RULES = {"columns": {"amount": {"max": 400}}}  # _table(300)'s amounts run 0-448.5: 28 rows above (NaN ones pass)


def test_nothing_declared_keeps_the_table_and_snapshots_it(tmp_path):
    table = _table(n=60)
    dm = TabularDataModule(TableSource(table), curation={"dedupe": False})
    dm.setup("fit")
    assert dm.fingerprint == table_fingerprint(table)  # as before curation existed
    assert dm.quarantine_path is None and dm.curation_report["quarantined"] == 0
    assert (tmp_path / "data" / "snapshots" / dm.snapshot_id / "data.parquet").is_file()  # $FACTORY_ROOT/data


def test_failing_rows_are_quarantined_in_a_file_and_in_no_split(tmp_path):
    dm = TabularDataModule(TableSource(_table(n=300)), curation={**RULES, "max_quarantine": 0.2,
                                                                  "store": str(tmp_path / "store")})
    dm.setup("fit")
    report = dm.curation_report
    assert report["quarantined"] == 28 and report["by_rule"] == {"amount: less_than_or_equal_to(400)": 28}
    assert sum(dm.split_sizes.values()) == report["rows_out"] == 300 - 28 - report["duplicates"]
    for split in ("train", "val", "test"):
        assert max(v for v in dm.split_table(split).column("amount").to_pylist() if v is not None) <= 400
    held = pq.read_table(dm.quarantine_path)
    assert dm.quarantine_path.startswith(str(tmp_path / "store" / "quarantine"))
    assert held.num_rows == 28 and min(held.column("_value").to_pylist(), key=float) == "400.5"
    assert dm.fingerprint == table_fingerprint(dm._table)


def test_more_than_max_quarantine_fails_in_one_line_naming_the_file(tmp_path):
    dm = TabularDataModule(TableSource(_table(n=300)), curation=RULES)
    with pytest.raises(DataError) as e:
        dm.setup("fit")
    message = str(e.value)
    assert message.startswith("data.curation.max_quarantine: 9.3% of 300 rows quarantined (limit 5.0%): "
                              "amount: less_than_or_equal_to(400) 28; rows in ")
    assert "\n" not in message and os.path.isfile(message.rsplit("rows in ", 1)[1])


def test_a_snapshot_replays_the_same_table_after_the_source_changed(tmp_path):
    first = TabularDataModule(TableSource(_table(n=90)))
    first.setup("fit")
    replay = TabularDataModule(TableSource(_table(n=90, shift=5.0)), snapshot=first.snapshot_id[:8])
    replay.setup("fit")
    assert replay.source.loads == 0  # the source is not read at all
    assert (replay.fingerprint, replay.snapshot_id) == (first.fingerprint, first.snapshot_id)
    assert replay.curation_report == first.curation_report
    for split in ("train", "val", "test"):
        assert replay.split_table(split).equals(first.split_table(split))
    with pytest.raises(DataError, match="snapshot"):
        TabularDataModule(TableSource(_table(n=90)), snapshot="ffffffffffffffff").setup("fit")


def test_a_store_that_cannot_be_written_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    dm = TabularDataModule(TableSource(_table(n=60)), curation={"store": str(blocker / "store")})
    with pytest.raises(DataError, match=r"^data.curation.store: cannot create .*file/store"):
        dm.setup("fit")


def test_restricted_data_needs_a_role_then_is_encrypted_and_audited(tmp_path, monkeypatch):
    cfg = {**RULES, "max_quarantine": 0.2, "classification": "restricted", "dataset": "cards"}
    source = TableSource(_table(n=300))
    with pytest.raises(AccessError, match="cards"):
        TabularDataModule(source, curation=cfg).setup("fit")
    assert source.loads == 0  # refused before any read
    policy = tmp_path / "policy.yaml"
    policy.write_text("roles: {fraud: {datasets: [cards]}}\ndefault_roles: [fraud]\n")
    monkeypatch.setenv("FACTORY_POLICY", str(policy))
    monkeypatch.setenv("FACTORY_DATA_KEY", "11" * 32)
    monkeypatch.setenv("FACTORY_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    dm = TabularDataModule(source, curation=cfg)
    dm.setup("fit")
    with pytest.raises(Exception):  # encrypted at rest: not Parquet without the key
        pq.read_table(dm.quarantine_path)
    from factory.governance.encryption import read_parquet

    assert read_parquet(dm.quarantine_path, bytes.fromhex("11" * 32)).num_rows == 28
    entries = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(e.get("dataset"), e.get("snapshot")) for e in entries][-1] == ("cards", dm.snapshot_id)


def test_a_typo_in_curation_fails_at_construction():
    from factory.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^data.curation.columns.amount.maxi: unknown rule"):
        TabularDataModule(TableSource(pa.table({"a": [1]})), curation={"columns": {"amount": {"maxi": 1}}})


def test_a_declared_rule_quarantines_a_row_validation_would_refuse():
    churned = _table(n=90).column("churned").to_pylist()
    churned[5] = None
    table = _table(n=90).set_column(3, "churned", pa.array(churned))
    with pytest.raises(DataError, match="target 'churned' has 1 missing value"):
        TabularDataModule(TableSource(table)).setup("fit")
    dm = TabularDataModule(TableSource(table), curation={"columns": {"churned": {"nullable": False}}})
    dm.setup("fit")
    assert dm.curation_report["by_rule"] == {"churned: not_nullable": 1}
