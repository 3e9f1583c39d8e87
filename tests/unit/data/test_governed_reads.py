"""Governed reads outside training (load_governed), the policy's dataset classifications, a
snapshot's classification raised by a stricter writer, and the fingerprint passed to snapshots.write."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from factory.data import snapshots
from factory.data.datamodule import TabularDataModule
from factory.data.fingerprint import table_fingerprint
from factory.data.governed import load_governed
from factory.data.spec import TableSchema
from factory.errors import AccessError
from factory.governance import access
from tests.unit.data.test_datamodule import TableSource, _table

KEY_HEX = "22" * 32
SCHEMA = TableSchema(features={"x": "numeric", "email": "categorical"}, target="y", task="binary")


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    for name in (access.POLICY_ENV, access.USER_ENV, "FACTORY_DATA_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(access.AUDIT_ENV, str(tmp_path / "audit.jsonl"))
    monkeypatch.setenv("FACTORY_PII_KEY", "33" * 32)


def _policy(tmp_path, monkeypatch, text: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    monkeypatch.setenv(access.POLICY_ENV, str(path))


def _reads(tmp_path) -> list[dict]:
    log = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def _data_cfg(tmp_path, **curation) -> dict:
    path = tmp_path / "pool.csv"
    pcsv.write_csv(pa.table({"x": [1.0, 2.0, 3.0], "email": ["a@x.io", "b@x.io", "c@x.io"], "y": [0, 1, 0]}), path)
    return {"source": {"_target_": "factory.data.sources.files.FileSource", "path": str(path), "target": "y"},
            "curation": curation}


def test_policy_classification_is_the_stricter(tmp_path, monkeypatch):
    assert access.effective("cards", "internal") == "internal"  # no policy file
    _policy(tmp_path, monkeypatch, "datasets: {cards: restricted, iris: public}\n")
    assert access.effective("cards", "public") == "restricted"
    assert access.effective("iris", "internal") == "internal"  # the declared one, when stricter
    with pytest.raises(AccessError, match=r"may not read dataset 'cards' \(restricted\)"):
        access.authorize("cards", "public", identity="bob")  # a config cannot lower it


def test_policy_datasets_values_are_checked(tmp_path, monkeypatch):
    from factory.errors import DataError

    _policy(tmp_path, monkeypatch, "datasets: {cards: secret}\n")
    with pytest.raises(DataError, match=r"datasets.cards: 'secret' is not one of public, internal, restricted"):
        access.load_policy()


def test_load_governed_refuses_before_reading_then_hashes_and_audits(tmp_path, monkeypatch):
    cfg = _data_cfg(tmp_path, dataset="pool", classification="internal",
                    columns={"email": {"pii": "hash"}})
    (tmp_path / "pool.csv").rename(tmp_path / "moved.csv")  # a read would fail with another error
    with pytest.raises(AccessError, match="dataset 'pool' \\(internal\\)"):
        load_governed(cfg, purpose="score")
    (tmp_path / "moved.csv").rename(tmp_path / "pool.csv")
    _policy(tmp_path, monkeypatch, "roles: {a: {datasets: [pool]}}\ndefault_roles: [a]\n")
    loaded = load_governed(cfg, run_id="r1", purpose="score")
    assert "a@x.io" not in loaded.table.column("email").to_pylist()
    assert len(loaded.table.column("email")[0].as_py()) == 64  # the HMAC's hex digest
    last = _reads(tmp_path)[-1]
    assert (last["action"], last["dataset"], last["run_id"], last["purpose"]) == ("read", "pool", "r1", "score")


def test_load_governed_public_by_config_but_restricted_by_policy_is_refused(tmp_path, monkeypatch):
    _policy(tmp_path, monkeypatch, "datasets: {pool: restricted}\n")
    with pytest.raises(AccessError, match="'pool' \\(restricted\\)"):
        load_governed(_data_cfg(tmp_path, dataset="pool", classification="public"))


def test_load_governed_public_reads_without_audit(tmp_path):
    loaded = load_governed(_data_cfg(tmp_path), pii_columns={"email": "drop"})
    assert loaded.table.column_names == ["x", "y"] and _reads(tmp_path) == []


def test_datamodule_uses_the_policy_classification(tmp_path, monkeypatch):
    _policy(tmp_path, monkeypatch, "datasets: {tiny: internal}\n")
    source = TableSource(_table(n=60))
    with pytest.raises(AccessError, match="'tiny' \\(internal\\)"):
        TabularDataModule(source, curation={"dedupe": False}).setup("fit")
    assert source.loads == 0


def test_a_stricter_writer_raises_the_snapshot_and_replay_checks_it(tmp_path, monkeypatch):
    table, store = pa.table({"x": [1.0, 2.0, 3.0], "email": ["a", "b", "c"], "y": [0, 1, 0]}), tmp_path / "s"
    sid = snapshots.write(table, SCHEMA, store, {"dataset": "cards", "classification": "internal"})
    assert snapshots.write(table, SCHEMA, store, {"dataset": "cards", "classification": "public"}) == sid
    assert snapshots.load_record(sid, store)["classification"] == "internal"  # never lowered
    snapshots.write(table, SCHEMA, store, {"dataset": "cards", "classification": "restricted"},
                    key=bytes.fromhex(KEY_HEX))
    record = snapshots.load_record(sid, store)
    assert (record["classification"], record["encrypted"]) == ("restricted", True)
    _policy(tmp_path, monkeypatch, "roles: {a: {classifications: [internal]}}\ndefault_roles: [a]\n")
    with pytest.raises(AccessError, match="'cards' \\(restricted\\)"):
        snapshots.read_governed(sid, store)  # an internal grant no longer reads it


def test_replay_checks_the_policy_classification_over_the_record(tmp_path, monkeypatch):
    table, store = pa.table({"x": [1.0, 2.0, 3.0], "email": ["a", "b", "c"], "y": [0, 1, 0]}), tmp_path / "s"
    sid = snapshots.write(table, SCHEMA, store, {"dataset": "cards"})
    _policy(tmp_path, monkeypatch, "datasets: {cards: internal}\n")
    with pytest.raises(AccessError, match="'cards' \\(internal\\)"):
        snapshots.read_governed(sid, store)


def test_write_takes_a_precomputed_fingerprint(tmp_path, monkeypatch):
    table = pa.table({"x": [1.0, 2.0, 3.0], "email": ["a", "b", "c"], "y": [0, 1, 0]})
    expected = snapshots.snapshot_id(table, SCHEMA)[0]
    calls = []
    monkeypatch.setattr(snapshots, "table_fingerprint", lambda t: calls.append(t) or table_fingerprint(t))
    assert snapshots.write(table, SCHEMA, tmp_path, {}, fingerprint=table_fingerprint(table)) == expected
    assert calls == []  # not computed again
