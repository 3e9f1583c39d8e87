"""``curate``: validate -> quarantine -> dedupe -> PII on three-row tables, and its report."""
from __future__ import annotations

import json

import pyarrow as pa
import pytest

from factory.data.curation.chain import DEFAULTS, Curated, curate, settings
from factory.data.sources.base import LoadedTable
from factory.data.spec import TableSchema
from factory.errors import ConfigError

SCHEMA = TableSchema({"amount": "numeric", "email": "categorical", "note": "categorical"}, "y", "binary")


def loaded(**columns) -> LoadedTable:
    data = {"amount": [5.0, 20000.0, 5.0], "email": ["a@x.io", "b@x.io", "a@x.io"],
            "note": ["hi", "call +44 20 7946 0958", "hi"], "y": [0, 1, 0]}
    return LoadedTable(pa.table({**data, **columns}), SCHEMA)


def test_nothing_declared_dedupes_and_scans_only():
    curated = curate(loaded(), {"scan_text": False})
    assert isinstance(curated, Curated)
    assert curated.table.num_rows == 2 and curated.report["duplicates"] == 1
    assert curated.quarantine.num_rows == 0 and curated.schema is SCHEMA
    assert curated.report == {"rows_in": 3, "rows_out": 2, "quarantined": 0, "by_rule": {}, "duplicates": 1,
                              "pii": {}, "pii_findings": {}}


def test_an_untouched_table_is_passed_through():
    source = loaded(y=[0, 1, 1])
    assert curate(source, {"scan_text": False}).table is source.table
    assert curate(source, {"dedupe": False, "scan_text": False}).report["duplicates"] == 0


def test_a_failing_row_is_quarantined_and_not_kept():
    curated = curate(loaded(), {"columns": {"amount": {"max": 10000}}, "dedupe": False, "scan_text": False})
    assert curated.table.column("amount").to_pylist() == [5.0, 5.0]
    assert curated.quarantine.column("_row").to_pylist() == [1]
    assert curated.report["quarantined"] == 1 and curated.report["by_rule"] == {"amount: less_than_or_equal_to(10000)": 1}


def test_quarantine_then_dedupe_then_pii(monkeypatch):
    monkeypatch.setenv("FACTORY_PII_KEY", "k" * 32)
    cfg = {"columns": {"amount": {"min": 0, "max": 10000}, "email": {"pii": "hash"}, "note": {"pii": "drop"}}}
    curated = curate(loaded(), cfg)
    assert curated.table.num_rows == 1  # row 1 quarantined, row 2 a copy of row 0
    assert curated.table.column_names == ["amount", "email", "y"]
    assert "a@x.io" not in curated.table.column("email").to_pylist()
    assert curated.schema.features == {"amount": "numeric", "email": "categorical"}
    assert "b@x.io" not in str(curated.quarantine.to_pydict()) and "7946" not in str(curated.quarantine.to_pydict())
    report = curated.report
    assert (report["quarantined"], report["duplicates"], report["pii"]) == (1, 1, {"email": "hash", "note": "drop"})
    json.dumps(report, allow_nan=False)  # strict JSON: run.json holds it


def test_text_columns_not_tagged_are_scanned():
    curated = curate(loaded(), {"dedupe": False})
    assert curated.report["pii_findings"] == {"email": {"email": 3}, "note": {"phone": 1}}


def test_a_hashed_numeric_feature_becomes_categorical_and_the_target_cannot_be_pii(monkeypatch):
    monkeypatch.setenv("FACTORY_PII_KEY", "k" * 32)
    assert curate(loaded(), {"columns": {"amount": {"pii": "hash"}}, "scan_text": False}).schema.features["amount"] \
        == "categorical"
    with pytest.raises(ConfigError, match=r"^data.curation.columns.y.pii: the target"):
        curate(loaded(), {"columns": {"y": {"pii": "drop"}}})


def test_settings_fill_defaults_and_name_an_unknown_key():
    assert settings(None) == DEFAULTS
    with pytest.raises(ConfigError, match=r"^data.curation.colums: unknown key"):
        settings({"colums": {}})
    with pytest.raises(ConfigError, match=r"^data.curation.classification: expected one of public"):
        settings({"classification": "secret"})
