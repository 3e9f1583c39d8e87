"""The warehouse source's projection and filter run in the database (DuckDB, SQLite here;
PostgreSQL in tests/integration/test_warehouse_postgres.py), and their one-line errors."""
from __future__ import annotations

import sqlite3

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from factory.data.sources import FraudSource, WarehouseSource
from factory.data.sources.warehouse import _plain_types, build_demo_warehouse
from factory.errors import DataError

FEATURES = ["amount", "channel"]
ONLINE = "channel = 'online'"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return build_demo_warehouse(tmp_path_factory.mktemp("w") / "w.duckdb", rows=200, seed=7)


def _error(source: WarehouseSource) -> str:
    with pytest.raises(DataError) as info:
        source.load()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_duckdb_reads_only_the_declared_columns_and_rows(warehouse):
    query = "SELECT * FROM transactions  -- a comment at the end comments out no part of the wrapper"
    source = WarehouseSource(f"duckdb:///{warehouse}", query, "is_fraud", features=FEATURES, filter=ONLINE)
    loaded = source.load()
    semicolon = WarehouseSource(f"duckdb:///{warehouse}", "SELECT * FROM transactions; ", "is_fraud",
                                features=FEATURES, filter=ONLINE)
    assert semicolon.load().table.equals(loaded.table)
    full = FraudSource(rows=200, seed=7).load().table
    expected = full.filter(pc.equal(full["channel"], "online")).select([*FEATURES, "is_fraud"])
    assert loaded.table.equals(expected)
    # The plan: DuckDB's scan itself projects the two features and the target and applies the filter.
    with duckdb.connect(str(warehouse), read_only=True) as con:
        plan = con.sql("EXPLAIN " + source.select(['"amount"', '"channel"', '"is_fraud"'])).fetchall()[0][1]
    scan = plan[plan.index("Seq Scan"):]
    assert "Projections" in scan and "Filters" in scan and "channel = 'online'" in scan
    assert "merchant_id" not in plan and "hour" not in plan


def test_no_features_selects_every_column_and_a_filter_alone_still_applies(warehouse):
    loaded = WarehouseSource(f"duckdb:///{warehouse}", "SELECT * FROM transactions", "is_fraud",
                             filter="amount < 0").load()
    assert loaded.table.num_rows == 0 and "merchant_id" in loaded.table.column_names


def test_sqlite_quotes_columns_in_its_own_dialect(tmp_path):
    db = tmp_path / "crm.db"
    with sqlite3.connect(db) as con:
        con.execute('CREATE TABLE customers ("Tenure" INTEGER, "plan type" TEXT, "select" INTEGER, churned TEXT)')
        con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)",
                        [(1, "basic", 0, "Yes"), (20, "pro", 1, "No"), (3, "pro", 1, "Yes")])
    con.close()
    loaded = WarehouseSource(f"sqlite:///{db}", "SELECT * FROM customers", "churned", positive_label="Yes",
                             features=["Tenure", "plan type", "select"], filter='"plan type" = \'pro\'').load()
    assert loaded.table.to_pydict() == {"Tenure": [20, 3], "plan type": ["pro", "pro"], "select": [1, 1],
                                        "churned": ["No", "Yes"]}


def test_errors_name_the_source_and_what_failed(warehouse):
    url = f"duckdb:///{warehouse}"
    bad_filter = _error(WarehouseSource(url, "SELECT * FROM transactions", "is_fraud", filter="chanel = 'x'"))
    assert bad_filter.startswith(f"cannot query {url}: data.source.filter \"chanel = 'x'\" failed: ")
    assert "chanel" in bad_filter
    missing = _error(WarehouseSource(url, "SELECT * FROM nope", "is_fraud", filter=ONLINE))
    assert missing.startswith(f"cannot query {url}: data.source.query failed: ") and "nope" in missing
    unknown = _error(WarehouseSource(url, "SELECT amount, is_fraud FROM transactions", "is_fraud",
                                     features=["amount", "hour"]))
    assert unknown == (f"cannot query {url}: unknown column 'hour' in data.source.features/target;"
                       " data.source.query returns: amount, is_fraud")


def test_postgres_numeric_from_adbc_becomes_float():
    # ADBC hands PostgreSQL NUMERIC over as an opaque extension type whose storage is its text.
    numeric = pa.opaque(pa.string(), "numeric", "PostgreSQL")
    table = pa.table({"n": pa.ExtensionArray.from_storage(numeric, pa.array(["1.50", None, "NaN"]))})
    plain = _plain_types(table)
    assert plain["n"].type == pa.float64() and plain["n"].to_pylist()[:2] == [1.5, None]
