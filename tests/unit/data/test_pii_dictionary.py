"""pii on dictionary (categorical) columns, and ``""`` hashed as missing, on three-row tables."""
from __future__ import annotations

import pandas as pd
import pyarrow as pa

from factory.data.curation import pii
from factory.data.curation.chain import curate
from factory.data.sources import FileSource

KEY = b"k" * 32


def categorical(values: list) -> pa.ChunkedArray:
    """Two chunks with different dictionaries, as a Parquet file's row groups may hold."""
    return pa.chunked_array([pa.array(values[:2]).dictionary_encode(), pa.array(values[2:]).dictionary_encode()])


def test_a_dictionary_column_hashes_as_its_values():
    values = ["ann@example.org", None, "bob@example.org"]
    table = pa.table({"email": categorical(values), "amount": [1.0, 2.0, 3.0]})
    out = pii.apply(table, {"email": "hash"}, KEY)
    assert out.schema.field("email").type == pa.string()
    assert out.column("email").to_pylist() == [pii.hash_value(v, KEY) for v in values]
    assert pii.apply(table, {"email": "drop"}, None).column_names == ["amount"]


def test_a_dictionary_column_is_scanned():
    table = pa.table({"note": categorical(["mail ann@example.org", "hi", "mail ann@example.org"])})
    assert pii.scan(table, ["note"]) == {"note": {"email": 2}}


def test_curate_reads_a_categorical_parquet_column(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_PII_KEY", "k" * 32)
    path = tmp_path / "people.parquet"
    pd.DataFrame({"email": pd.Categorical(["ann@example.org", "bob@example.org", "cy@example.org"]),
                  "name": pd.Categorical(["Ann", "Bob", "Cy"]),
                  "note": pd.Categorical(["hi", "mail bob@example.org", "hi"]),
                  "amount": [1.0, 2.0, 20000.0], "y": [0, 1, 0]}).to_parquet(path)
    loaded = FileSource(path=str(path), target="y").load()
    cfg = {"columns": {"email": {"pii": "hash"}, "name": {"pii": "drop"}, "amount": {"max": 10000}}}
    curated = curate(loaded, cfg)
    assert curated.table.column_names == ["email", "note", "amount", "y"]
    assert curated.table.column("email").to_pylist() == [pii.hash_value(v, KEY)
                                                         for v in ("ann@example.org", "bob@example.org")]
    assert curated.report["pii_findings"] == {"note": {"email": 1}}
    held = curated.quarantine  # the failing row: its pii columns hashed or dropped there too
    assert held.column("email").to_pylist() == [pii.hash_value("cy@example.org", KEY)] and "name" not in held.column_names


def test_an_empty_string_hashes_as_missing():
    # Every reader takes "" for missing (the server's protocol, the preprocessing, the ONNX graph):
    # a digest of "" would be a known level offline and missing online.
    assert pii.hash_value("", KEY) is None and pii.hash_values(["", None, "a"], KEY)[:2] == [None, None]
    table = pa.table({"email": ["", "ann@example.org", None]})
    assert pii.apply(table, {"email": "hash"}, KEY).column("email").to_pylist() == \
        [None, pii.hash_value("ann@example.org", KEY), None]
    dictionary = pa.table({"email": categorical(["", "ann@example.org", ""])})
    assert pii.apply(dictionary, {"email": "hash"}, KEY).column("email").null_count == 2
