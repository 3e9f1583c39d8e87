"""scripts/data.py on a store of three-row snapshots: list, show, diff, and their errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from factory.data import snapshots
from factory.data.spec import TableSchema
from tests.conftest import REPO, script_env

SCRIPT = str(REPO / "scripts" / "data.py")
SCHEMA = TableSchema({"amount": "numeric", "plan": "categorical"}, "churned", "binary", positive_label="Yes")


def cli(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, cwd=tmp_path,
                          env=env or script_env(tmp_path), timeout=120)


@pytest.fixture
def store(tmp_path) -> tuple[str, str]:
    """Two snapshots in ``$FACTORY_ROOT/data``: b drops a row, adds two and a column."""
    a = snapshots.write(pa.table({"amount": [10.0, 20.0, 30.0], "plan": ["basic", "pro", "basic"],
                                  "churned": ["Yes", "No", "No"]}), SCHEMA, tmp_path / "data",
                        {"source": "churn", "dataset": "customers"})
    b = snapshots.write(pa.table({"amount": [10.0, 20.0, 40.0, 50.0], "plan": ["basic", "pro", "gold", "gold"],
                                  "churned": ["Yes", "No", "Yes", "Yes"], "age": [30, 40, 50, 60]}),
                        TableSchema({**SCHEMA.features, "age": "numeric"}, "churned", "binary", "Yes"),
                        tmp_path / "data", {"source": "churn", "dataset": "customers", "parent": a,
                                            "curation": {"rows_in": 5, "rows_out": 4, "quarantined": 1,
                                                         "duplicates": 0, "pii": {}},
                                            "quarantine": "quarantine/0123456789abcdef.parquet"})
    return a, b


def test_list_and_show(tmp_path, store):
    a, b = store
    listed = cli(tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    assert a in listed.stdout and b in listed.stdout and "customers" in listed.stdout
    rows = json.loads(cli(tmp_path, "list", "--json").stdout)
    assert [(r["id"], r["rows"], r["parent"]) for r in rows] == [(a, 3, None), (b, 4, a)]
    shown = cli(tmp_path, "show", b[:6])
    assert shown.returncode == 0, shown.stderr
    words = " ".join(shown.stdout.split())
    for text in (b, "binary, target churned (positive label 'Yes')", "feature (categorical)", f"parent {a}",
                 "curation 5 rows in, 4 kept, 1 quarantined, 0 duplicates dropped",
                 "quarantine quarantine/0123456789abcdef.parquet"):
        assert text in words
    assert json.loads(cli(tmp_path, "show", b, "--json").stdout)["schema"]["features"]["age"] == "numeric"


def test_diff_text_and_json(tmp_path, store):
    a, b = store
    done = cli(tmp_path, "diff", a[:5], b[:5])
    assert done.returncode == 0, done.stderr
    assert "rows: 2 added, 1 removed, 2 unchanged (compared on 3 shared columns)" in done.stdout
    assert "column added: age (int64)" in done.stdout and "feature added: age (numeric)" in done.stdout
    assert "gold" in done.stdout  # a declared categorical's new level
    result = json.loads(cli(tmp_path, "diff", a, b, "--json").stdout)
    assert result["rows"]["added"] == 2 and result["schema"]["columns_added"] == {"age": "int64"}


def test_store_flag_and_an_empty_store(tmp_path, store):
    other = tmp_path / "elsewhere"
    done = cli(other.parent, "list", "--store", str(other))
    assert done.returncode == 0 and "no snapshots in" in done.stdout
    assert store[0] in cli(tmp_path, "--store", str(tmp_path / "data"), "list").stdout


@pytest.mark.parametrize("args, message", [
    (("show", "beef0000"), "error: no snapshot 'beef0000' in "),
    (("show", "../data"), "error: snapshot id '../data' is a path"),
    (("diff", "beef0000", "beef0001"), "error: no snapshot 'beef0000'"),
    (("show",), "error: the following arguments are required: id"),
])
def test_bad_ids_are_one_line_and_exit_2(tmp_path, store, args, message):
    done = cli(tmp_path, *args)
    assert done.returncode == 2
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr


def test_diff_of_a_restricted_snapshot_needs_access_and_the_key(tmp_path, store):
    key = os.urandom(32)
    c = snapshots.write(pa.table({"amount": [1.0], "plan": ["pro"], "churned": ["No"]}), SCHEMA, tmp_path / "data",
                        {"dataset": "vault", "classification": "restricted"}, key=key)
    env = {**script_env(tmp_path), "FACTORY_USER": "bob"}
    env.pop("FACTORY_DATA_KEY", None)
    env.pop("FACTORY_POLICY", None)
    refused = cli(tmp_path, "diff", store[0], c, env=env)
    assert refused.returncode == 2 and "bob may not read dataset 'vault' (restricted)" in refused.stderr
    (tmp_path / "governance").mkdir(exist_ok=True)  # the refusal was logged there
    policy = "roles: {keeper: {datasets: [vault]}}\nusers: {bob: [keeper]}\n"
    (tmp_path / "governance" / "policy.yaml").write_text(policy)
    no_key = cli(tmp_path, "diff", store[0], c, env=env)
    assert no_key.returncode == 2 and no_key.stderr.startswith("error: no data key: set FACTORY_DATA_KEY")
    done = cli(tmp_path, "diff", store[0], c, env={**env, "FACTORY_DATA_KEY": key.hex()})
    assert done.returncode == 0 and "rows: 1 added, 3 removed" in done.stdout, done.stderr
    audit = (tmp_path / "governance" / "audit.jsonl").read_text()
    assert f'"snapshot": "{c}"' in audit and key.hex() not in audit
