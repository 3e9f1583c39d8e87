"""factory.serving.labeling.import_labels on a hand-made export folder (no model): a restricted,
encrypted base stays restricted and encrypted, its read is authorized and audited, and a reader
the policy does not grant gets one line and no snapshot."""
from __future__ import annotations

import base64
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import factory
from factory.data import labeling, snapshots
from factory.data.spec import TableSchema
from factory.errors import AccessError, DataError
from factory.governance import access
from factory.serving import labeling as jobs

SCHEMA = TableSchema(features={"age": "numeric", "ward": "categorical"}, target="outcome", task="binary")
BASE = pa.table({"age": [71, 45, 60], "ward": ["a", "b", "a"], "outcome": [1, 0, 0]})
POLICY = "roles: {clinician: {datasets: [patients]}}\nusers: {alice: [clinician]}\n"


@pytest.fixture
def restricted(tmp_path, monkeypatch):
    """``(store, base id, export folder)``: a restricted base snapshot and two exported rows."""
    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path))
    monkeypatch.setenv("FACTORY_DATA_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setenv(access.USER_ENV, "alice")
    (tmp_path / "governance").mkdir()
    (tmp_path / "governance" / "policy.yaml").write_text(POLICY)
    from factory.governance.encryption import load_key

    store = tmp_path / "data"
    base = snapshots.write(BASE, SCHEMA, store, {"source": "patients", "dataset": "patients",
                                                 "classification": "restricted"}, key=load_key())
    rows = pa.table({"age": [33, 80], "ward": ["c", "a"]})
    ids = labeling.row_ids(rows)
    folder = tmp_path / "batch"
    folder.mkdir()
    pq.write_table(rows.append_column("row_id", pa.array(ids)), folder / jobs.ROWS)
    (folder / jobs.MANIFEST).write_text(json.dumps({
        "model": {"ref": "outcome@1"}, "task": "binary", "target": "outcome", "positive_label": None,
        "classes": ["0", "1"], "class_values": [0, 1], "features": SCHEMA.features, "base": base,
        "dataset": "patients", "classification": "restricted", "strategy": "uncertainty"}))
    tasks = labeling.tasks(rows, ids, ["0", "1"])
    export = [{"id": i + 1, **t, "annotations": [{"id": i, "result": [labeling.choice(str(i))]}]}
              for i, t in enumerate(tasks)]
    (folder / "export.json").write_text(json.dumps(export))
    return store, base, folder


def _import(folder):
    return jobs.import_labels(factory.compose("label", ["action=import", f"annotations={folder / 'export.json'}"]))


def test_restricted_base_gets_a_restricted_encrypted_child(restricted, tmp_path):
    store, base, folder = restricted
    result = _import(folder)
    assert result["parent"] == base and result["rows"] == 5
    record = snapshots.load_record(result["snapshot"], store)
    assert record["classification"] == "restricted" and record["encrypted"] and record["dataset"] == "patients"
    with pytest.raises(DataError, match="encrypted"):
        snapshots.read(result["snapshot"], store)
    child = snapshots.read_governed(result["snapshot"], store)
    assert child.table.slice(3).to_pylist() == [{"age": 33, "ward": "c", "outcome": 0},
                                                {"age": 80, "ward": "a", "outcome": 1}]
    assert child.table.schema == BASE.schema  # the labels stored as the base's int64 target
    reads = (tmp_path / "governance" / "audit.jsonl").read_text()
    assert base in reads and '"alice"' in reads


def test_a_reader_without_a_grant_gets_one_line_and_no_snapshot(restricted, monkeypatch):
    store, base, folder = restricted
    monkeypatch.setenv(access.USER_ENV, "mallory")
    before = snapshots.list_snapshots(store)
    with pytest.raises(AccessError, match="may not read dataset 'patients'") as info:
        _import(folder)
    assert len(str(info.value).splitlines()) == 1
    assert snapshots.list_snapshots(store) == before
