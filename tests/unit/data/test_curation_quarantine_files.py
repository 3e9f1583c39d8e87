"""Quarantine files per config (never shared, never overwritten), and a replay's read audited once under DDP."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from factory.data.datamodule import TabularDataModule
from tests.unit.data.test_datamodule import TableSource, _table

A = {"columns": {"amount": {"max": 400}}, "max_quarantine": 0.5}  # _table(300): 28 rows above 400
B = {"columns": {"amount": {"max": 300}}, "max_quarantine": 0.5}


def held(cfg: dict, table=None) -> TabularDataModule:
    dm = TabularDataModule(TableSource(table if table is not None else _table(n=300)), curation=cfg)
    dm.setup("fit")
    return dm


def test_other_rules_on_the_same_source_write_another_file():
    a = held(A)
    first = pq.read_table(a.quarantine_path)
    b = held(B)
    assert b.quarantine_path != a.quarantine_path
    assert pq.read_table(a.quarantine_path).equals(first) and first.num_rows == 28  # run A's file intact
    assert pq.read_table(b.quarantine_path).num_rows == b.curation_report["quarantined"] > 28
    assert held(A).quarantine_path == a.quarantine_path  # the same config: the same file


def test_a_restricted_quarantine_is_not_replaced_by_a_public_one(tmp_path, monkeypatch):
    policy = tmp_path / "policy.yaml"
    policy.write_text("roles: {fraud: {datasets: [cards]}}\ndefault_roles: [fraud]\n")
    monkeypatch.setenv("FACTORY_POLICY", str(policy))
    monkeypatch.setenv("FACTORY_DATA_KEY", "11" * 32)
    monkeypatch.setenv("FACTORY_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    restricted = held({**A, "classification": "restricted", "dataset": "cards"})
    public = held(A)
    assert public.quarantine_path != restricted.quarantine_path
    with pytest.raises(Exception):  # still encrypted at rest
        pq.read_table(restricted.quarantine_path)
    from factory.governance.encryption import read_parquet

    assert read_parquet(restricted.quarantine_path, bytes.fromhex("11" * 32)).num_rows == 28


@pytest.mark.parametrize("rank, audited", [(0, 1), (1, 0)])
def test_a_replayed_snapshot_is_audited_by_rank_zero_only(tmp_path, monkeypatch, rank, audited):
    from pytorch_lightning.utilities import rank_zero_only

    policy = tmp_path / "policy.yaml"
    policy.write_text("roles: {fraud: {datasets: [cards]}}\ndefault_roles: [fraud]\n")
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("FACTORY_POLICY", str(policy))
    monkeypatch.setenv("FACTORY_AUDIT_LOG", str(log))
    first = held({"classification": "internal", "dataset": "cards"}, _table(n=90))
    before = len(log.read_text().splitlines())
    monkeypatch.setattr(rank_zero_only, "rank", rank)  # what Lightning sets from RANK / LOCAL_RANK under DDP
    replay = TabularDataModule(TableSource(_table(n=90)), snapshot=first.snapshot_id)
    replay.setup("fit")
    entries = [json.loads(line) for line in log.read_text().splitlines()[before:]]
    assert [e.get("snapshot") for e in entries] == [first.snapshot_id] * audited
