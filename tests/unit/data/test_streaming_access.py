"""data=files_stream is governed like the in-memory path: refused before a file is read, the read audited."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.data.sources import FileSource
from factory.data.streaming import StreamingDataModule
from factory.errors import AccessError


@pytest.fixture
def parquet_dir(tmp_path):
    folder = tmp_path / "tx"
    folder.mkdir()
    n = 400
    pq.write_table(pa.table({"x": [float(i % 17) for i in range(n)], "y": [i % 2 for i in range(n)]}),
                   folder / "part-0.parquet", row_group_size=100)
    return folder


def _module(folder, **kw):
    return StreamingDataModule(FileSource(path=str(folder), target="y"), batch_size=32, stats_cache=None, **kw)


def test_restricted_stream_refused_without_a_grant(parquet_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_POLICY", str(tmp_path / "missing-policy.yaml"))
    monkeypatch.setenv("FACTORY_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    dm = _module(parquet_dir, dataset="tx", classification="restricted")
    with pytest.raises(AccessError, match="tx"):
        dm.setup("fit")
    assert dm.stream is None


def test_granted_stream_read_is_audited(parquet_dir, tmp_path, monkeypatch):
    policy = tmp_path / "policy.yaml"
    policy.write_text("roles:\n  analyst:\n    datasets: [tx]\nusers:\n  alice: [analyst]\n")
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("FACTORY_POLICY", str(policy))
    monkeypatch.setenv("FACTORY_AUDIT_LOG", str(log))
    monkeypatch.setenv("FACTORY_USER", "alice")
    dm = _module(parquet_dir, dataset="tx", classification="restricted")
    dm.setup("fit")
    reads = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["action"], r["dataset"], r.get("purpose")) for r in reads if r["action"] == "read"] == \
        [("read", "tx", "stream")]


def test_public_stream_needs_no_policy(parquet_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    _module(parquet_dir).setup("fit")
    assert not (tmp_path / "audit.jsonl").exists()
