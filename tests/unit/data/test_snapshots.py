"""The snapshot store on three-row tables: ids, atomic and shared writes, encryption, lookup, diff."""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.data import snapshots
from factory.data.fingerprint import table_fingerprint
from factory.data.spec import TableSchema
from factory.errors import AccessError, DataError

SCHEMA = TableSchema({"amount": "numeric", "plan": "categorical"}, "churned", "binary", positive_label="Yes")


def table(amounts=(10.0, 20.0, 30.0), plans=("basic", "pro", "basic"), churned=("Yes", "No", "No")) -> pa.Table:
    return pa.table({"amount": list(amounts), "plan": list(plans), "churned": list(churned)})


def write(store: Path, t: pa.Table | None = None, schema: TableSchema = SCHEMA, **meta) -> str:
    return snapshots.write(t if t is not None else table(), schema, store, {"source": "churn", **meta})


def test_write_then_read_gives_the_table_schema_and_meta(tmp_path):
    t = table()
    sid = snapshots.write(t, SCHEMA, tmp_path, {"source": "churn", "source_fingerprint": "f" * 64, "note": "x"})
    folder = tmp_path / "snapshots" / sid
    assert len(sid) == 16 and int(sid, 16) >= 0
    assert sorted(p.name for p in folder.iterdir()) == ["data.parquet", "snapshot.json"]
    record = json.loads((folder / "snapshot.json").read_text())  # strict JSON
    assert record["id"] == sid and record["fingerprint"] == table_fingerprint(t)
    assert record["rows"] == 3 and record["columns"][1] == {"name": "plan", "type": "string"}
    assert record["schema"] == {"features": {"amount": "numeric", "plan": "categorical"}, "target": "churned",
                                "task": "binary", "positive_label": "Yes", "image_shape": None}
    assert record["source"] == {"name": "churn", "fingerprint": "f" * 64}
    assert (record["classification"], record["encrypted"], record["parent"]) == ("public", False, None)
    assert record["meta"] == {"note": "x"} and record["created"].endswith("+00:00")

    snap = snapshots.read(sid, tmp_path)
    assert snap.table.equals(t) and snap.schema == SCHEMA and snap.id == sid
    assert snap.meta["source"] == "churn" and snap.meta["note"] == "x"


def test_image_shape_comes_back_a_tuple(tmp_path):
    schema = TableSchema({"p0": "numeric", "p1": "numeric"}, "y", "multiclass", image_shape=(1, 1, 2))
    sid = snapshots.write(pa.table({"p0": [0.1, 0.2, 0.3], "p1": [1.0, 0.0, 0.5], "y": [0, 1, 2]}), schema,
                          tmp_path, {})
    assert snapshots.read(sid, tmp_path).schema == schema


def test_a_table_with_values_under_its_nulls_reads_back_with_its_fingerprint(tmp_path):
    """A source's NaN under a masked slot, Parquet's 0 when read back; lists' "item" vs "element"."""
    import numpy as np

    t = table().append_column("distance", pa.array(np.array([1.5, np.nan, 2.0]), mask=np.array([0, 1, 0], bool)))
    t = t.append_column("tags", pa.array([[1], None, [2, 3]]))
    sid = write(tmp_path, t)
    assert table_fingerprint(pq.read_table(tmp_path / "snapshots" / sid / "data.parquet")) == table_fingerprint(t)
    assert snapshots.read(sid, tmp_path).table.equals(t.cast(snapshots.read(sid, tmp_path).table.schema))
    assert table_fingerprint(t) != table_fingerprint(t.set_column(3, "distance", pa.array([1.5, 0.0, 2.0])))


def test_same_table_same_id_written_once(tmp_path):
    sid = write(tmp_path)
    data = tmp_path / "snapshots" / sid / "data.parquet"
    before = data.stat().st_mtime_ns
    rechunked = pa.concat_tables([table().slice(0, 1), table().slice(1)])  # same content, other chunks
    assert write(tmp_path, rechunked, source="elsewhere") == sid
    assert data.stat().st_mtime_ns == before
    assert snapshots.read(sid, tmp_path).meta["source"] == "churn"  # the first writer's record stays
    assert [row["id"] for row in snapshots.list_snapshots(tmp_path)] == [sid]


def test_other_rows_or_schema_give_another_id(tmp_path):
    sid = write(tmp_path)
    assert write(tmp_path, table(amounts=(10.0, 20.0, 31.0))) != sid
    other_kind = TableSchema({"amount": "categorical", "plan": "categorical"}, "churned", "binary", "Yes")
    assert write(tmp_path, schema=other_kind) != sid  # a replay keeps the schema it was declared with


def _write_at_barrier(store: str, barrier, rounds: int, queue) -> None:
    ids = []
    for i in range(rounds):
        barrier.wait()
        ids.append(snapshots.write(table(), SCHEMA, Path(store) / str(i), {"source": "churn"}))
    queue.put(ids)


def test_two_processes_writing_the_same_snapshot_at_once(tmp_path):
    """Two DDP ranks store the same curated table at the same moment, five times."""
    ctx = multiprocessing.get_context("spawn")
    barrier, queue, rounds = ctx.Barrier(2), ctx.Queue(), 5
    workers = [ctx.Process(target=_write_at_barrier, args=(str(tmp_path), barrier, rounds, queue)) for _ in range(2)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert results[0] == results[1] and len(set(results[0])) == 1
    for i in range(rounds):
        root = tmp_path / str(i) / "snapshots"
        assert sorted(p.name for p in root.iterdir()) == [results[0][0]]  # no temp directory left
        assert snapshots.read(results[0][0], tmp_path / str(i)).table.equals(table())


@pytest.mark.parametrize("ref", ["../x", "a/b", "/etc", ".hidden", "ab..cd"])
def test_an_id_given_as_a_path_is_refused(tmp_path, ref):
    write(tmp_path)
    with pytest.raises(DataError, match="is a path: give an id"):
        snapshots.read(ref, tmp_path)


def test_a_unique_prefix_finds_the_snapshot_an_ambiguous_one_names_both(tmp_path):
    sid = write(tmp_path)
    assert snapshots.resolve(sid[:4], tmp_path) == sid
    assert snapshots.resolve(sid[:6].upper(), tmp_path) == sid
    twin = sid[:4] + ("0" * 12 if sid[4:] != "0" * 12 else "1" * 12)
    shutil.copytree(tmp_path / "snapshots" / sid, tmp_path / "snapshots" / twin)
    with pytest.raises(DataError, match=f"snapshot id '{sid[:4]}' is ambiguous: .*{sid}.*give more") as e:
        snapshots.read(sid[:4], tmp_path)
    assert twin in str(e.value) and "\n" not in str(e.value)
    assert snapshots.resolve(sid, tmp_path) == sid
    with pytest.raises(DataError, match="too short"):
        snapshots.resolve(sid[:3], tmp_path)


def test_an_unknown_id_says_how_to_list_ids(tmp_path):
    write(tmp_path)
    with pytest.raises(DataError, match=r"no snapshot 'beef0000' in .*snapshots \(`python scripts/data.py list"):
        snapshots.read("beef0000", tmp_path)
    with pytest.raises(DataError, match="no snapshot"):
        snapshots.read("zzzz", tmp_path / "empty")


def test_a_schema_column_missing_from_the_table_is_refused(tmp_path):
    with pytest.raises(DataError, match="schema column 'plan' is not in the table"):
        snapshots.write(table().drop_columns(["plan"]), SCHEMA, tmp_path, {})


def test_a_parent_is_resolved_and_must_exist(tmp_path):
    parent = write(tmp_path, pii={"plan": "hash"})
    child = write(tmp_path, table(amounts=(1.0, 2.0, 3.0)), parent=parent[:5])
    assert snapshots.read(child, tmp_path).record["parent"] == parent
    assert snapshots.load_record(child, tmp_path)["pii"] == {"plan": "hash"}  # the parent's columns, its tags
    with pytest.raises(DataError, match="no snapshot 'abcdef12'"):
        write(tmp_path, table(amounts=(4.0, 5.0, 6.0)), parent="abcdef12")


def test_a_changed_data_file_is_refused(tmp_path):
    sid = write(tmp_path)
    pq.write_table(table(amounts=(1.0, 2.0, 3.0)), tmp_path / "snapshots" / sid / "data.parquet")
    with pytest.raises(DataError, match=f"snapshot {sid}: .*data.parquet does not match its fingerprint"):
        snapshots.read(sid, tmp_path)


def test_list_is_oldest_first_with_its_facts(tmp_path):
    assert snapshots.list_snapshots(tmp_path) == []
    first = write(tmp_path, dataset="customers", note=1)
    (tmp_path / "snapshots" / ".abc.tmp").mkdir()  # a writer's temp directory is not a snapshot
    rows = snapshots.list_snapshots(tmp_path)
    assert rows == [{"id": first, "created": rows[0]["created"], "rows": 3, "columns": 3, "source": "churn",
                     "dataset": "customers", "classification": "public", "encrypted": False, "parent": None,
                     "bytes": (tmp_path / "snapshots" / first / "data.parquet").stat().st_size}]


# -- restricted data -------------------------------------------------------------------------


def test_restricted_needs_a_key_to_write(tmp_path):
    with pytest.raises(DataError, match="dataset 'churn' is restricted: its snapshot is stored encrypted only"):
        write(tmp_path, classification="restricted")
    with pytest.raises(DataError, match="classification 'secret' is not one of"):
        write(tmp_path, classification="secret")


def test_restricted_roundtrip_wrong_and_missing_key(tmp_path):
    key, wrong = os.urandom(32), os.urandom(32)
    sid = snapshots.write(table(), SCHEMA, tmp_path, {"source": "churn", "classification": "restricted"}, key=key)
    data = (tmp_path / "snapshots" / sid / "data.parquet").read_bytes()
    assert data.startswith(b"FCTYENC") and b"basic" not in data
    assert b"basic" not in (tmp_path / "snapshots" / sid / "snapshot.json").read_bytes()
    with pytest.raises(DataError, match=f"snapshot {sid} is encrypted \\(restricted\\): give the data key"):
        snapshots.read(sid, tmp_path)
    with pytest.raises(DataError, match="encrypted with another key"):
        snapshots.read(sid, tmp_path, key=wrong)
    snap = snapshots.read(sid, tmp_path, key=key)
    assert snap.table.equals(table()) and snap.record["encrypted"]


def test_a_clear_snapshot_written_again_as_restricted_is_encrypted_in_place(tmp_path):
    key = os.urandom(32)
    sid = write(tmp_path)
    assert snapshots.write(table(), SCHEMA, tmp_path, {"classification": "restricted"}, key=key) == sid
    record = snapshots.load_record(sid, tmp_path)
    assert (record["encrypted"], record["classification"]) == (True, "restricted")
    with pytest.raises(DataError, match="is encrypted"):
        snapshots.read(sid, tmp_path)
    assert snapshots.read(sid, tmp_path, key=key).table.equals(table())


def test_read_governed_checks_the_policy_and_audits_the_read(tmp_path, monkeypatch):
    key = os.urandom(32)
    sid = snapshots.write(table(), SCHEMA, tmp_path, {"dataset": "churn", "classification": "restricted"}, key=key)
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("FACTORY_AUDIT_LOG", str(log))
    monkeypatch.setenv("FACTORY_USER", "alice")
    monkeypatch.setenv("FACTORY_POLICY", str(tmp_path / "policy.yaml"))
    with pytest.raises(AccessError, match="alice may not read dataset 'churn' \\(restricted\\)"):
        snapshots.read_governed(sid, tmp_path)
    (tmp_path / "policy.yaml").write_text("roles: {owner: {datasets: [churn]}}\nusers: {alice: [owner]}\n")
    monkeypatch.delenv("FACTORY_DATA_KEY", raising=False)
    with pytest.raises(DataError, match="no data key: set FACTORY_DATA_KEY"):
        snapshots.read_governed(sid, tmp_path)
    monkeypatch.setenv("FACTORY_DATA_KEY", key.hex())
    assert snapshots.read_governed(sid, tmp_path, run_id="r1").table.equals(table())
    assert snapshots.read_governed(sid, tmp_path, run_id="r1", audit=False).id == sid  # another rank's read
    reads = [json.loads(line) for line in log.read_text().splitlines() if '"read"' in line]
    assert [(r["who"], r["dataset"], r["snapshot"], r["run_id"]) for r in reads] == [("alice", "churn", sid, "r1")]


# -- diff ------------------------------------------------------------------------------------


def test_diff_counts_rows_added_and_removed_as_a_multiset(tmp_path):
    a = write(tmp_path, table())
    b = write(tmp_path, table(amounts=(10.0, 10.0, 99.0), plans=("basic", "basic", "pro"), churned=("Yes",) * 3))
    d = snapshots.diff(a, b, tmp_path)
    assert d["rows"] == {"added": 2, "removed": 2, "unchanged": 1, "compared_on": None}  # row 1 twice: once is new
    assert (d["a"]["id"], d["b"]["id"], d["a"]["rows"]) == (a, b, 3)
    assert snapshots.diff(a, a[:6], tmp_path)["rows"] == {"added": 0, "removed": 0, "unchanged": 3,
                                                           "compared_on": None}


def test_diff_names_schema_changes_and_compares_rows_on_shared_columns(tmp_path):
    a = write(tmp_path, table().append_column("city", pa.array(["x", "y", "z"])))
    changed = pa.table({"amount": [10, 20, 30], "plan": ["basic", "pro", "basic"], "churned": ["Yes", "No", "No"],
                        "age": [30.0, 40.0, 50.0]})
    schema = TableSchema({"amount": "numeric", "plan": "numeric", "age": "numeric"}, "plan", "regression")
    b = snapshots.write(changed, schema, tmp_path, {})
    d = snapshots.diff(a, b, tmp_path)
    assert d["schema"] == {
        "columns_added": {"age": "double"}, "columns_removed": {"city": "string"},
        "columns_retyped": {"amount": ["double", "int64"]},
        "features_added": {"age": "numeric"}, "features_removed": {},
        "kinds_changed": {"plan": ["categorical", "numeric"]},
        "changed": {"target": ["churned", "plan"], "task": ["binary", "regression"], "positive_label": ["Yes", None]},
    }
    assert d["rows"] == {"added": 0, "removed": 0, "unchanged": 3, "compared_on": ["plan", "churned"]}


def test_diff_column_summaries(tmp_path):
    a = write(tmp_path, table())
    b = write(tmp_path, table(amounts=(10.0, None, 50.0), plans=("pro", "pro", "gold")))
    columns = snapshots.diff(a, b, tmp_path)["columns"]
    assert columns["amount"]["a"] == {"null_share": 0.0, "mean": 20.0, "std": 10.0, "min": 10.0, "max": 30.0}
    assert columns["amount"]["b"]["null_share"] == pytest.approx(1 / 3)
    assert (columns["amount"]["b"]["mean"], columns["amount"]["b"]["max"]) == (30.0, 50.0)
    assert columns["plan"]["kind"] == "categorical"
    assert columns["plan"]["a"] == {"null_share": 0.0, "distinct": 2, "top": {"basic": 2 / 3, "pro": 1 / 3}}
    assert columns["plan"]["b"]["top"] == {"pro": 2 / 3, "gold": 1 / 3}
    assert columns["churned"]["a"]["top"] == {"No": 2 / 3, "Yes": 1 / 3}  # a classification target's classes


def test_diff_names_no_levels_of_pii_or_undeclared_text(tmp_path):
    emails = pa.array(["a@x.io", "b@x.io", "a@x.io"])
    a = write(tmp_path, table().append_column("email", emails).append_column("note", emails), pii={"email": "hash"})
    b = write(tmp_path, table(amounts=(1.0, 2.0, 3.0)).append_column("email", emails).append_column("note", emails),
              pii={"email": "hash"})
    d = snapshots.diff(a, b, tmp_path)
    for column in ("email", "note"):
        assert d["columns"][column]["a"] == {"null_share": 0.0, "distinct": 2}
    assert "@" not in json.dumps(d)


def test_diff_of_an_empty_table_all_nulls_and_types_without_statistics(tmp_path):
    import datetime

    from factory.data.snapshot_display import print_diff
    from factory.files import json_text

    schema = TableSchema({"x": "numeric"}, "y", "regression")
    empty = snapshots.write(pa.table({"x": pa.array([], pa.float64()), "y": pa.array([], pa.float64())}), schema,
                            tmp_path, {})
    full = snapshots.write(pa.table({"x": pa.array([None] * 3, pa.float64()), "y": [1.0, 2.0, 3.0],
                                     "when": [datetime.datetime(2020, 1, 1)] * 3,
                                     "wait": pa.array([1, 2, 3], pa.duration("s"))}), schema, tmp_path, {})
    d = snapshots.diff(empty, full, tmp_path)
    json.loads(json_text(d))  # strict JSON
    assert d["rows"] == {"added": 3, "removed": 0, "unchanged": 0, "compared_on": ["x", "y"]}
    assert d["columns"]["x"]["a"]["null_share"] is None and d["columns"]["x"]["b"]["null_share"] == 1.0
    assert d["columns"]["wait"]["b"] == {"null_share": 0.0}  # no min/max kernel for durations
    assert d["columns"]["when"]["b"]["min"] == "2020-01-01 00:00:00"
    print_diff(d)
