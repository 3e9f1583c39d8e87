"""Data sources: generated, bundled, file and SQL tables, and their one-line errors."""
from __future__ import annotations

import importlib.util
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from factory.data.sources import (
    DataSource,
    FileSource,
    FraudSource,
    LoadedTable,
    SklearnSource,
    WarehouseSource,
)
from factory.data.sources.declared import declare_schema
from factory.data.sources.warehouse import build_demo_warehouse
from factory.errors import DataError

REPO = Path(__file__).resolve().parents[3]


def error_of(call, *args, **kwargs) -> str:
    """The DataError message of ``call(...)``, checked to be a single line."""
    with pytest.raises(DataError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


# --- fraud -----------------------------------------------------------------------------


def test_fraud_is_deterministic_per_seed():
    first = FraudSource(rows=2000, seed=7).load().table
    again = FraudSource(rows=2000, seed=7).load().table
    other = FraudSource(rows=2000, seed=8).load().table
    assert ipc_bytes(first) == ipc_bytes(again)
    assert not first.equals(other)


def test_fraud_rate_is_calibrated():
    labels = FraudSource(rows=40000, fraud_rate=0.015, seed=3).load().table["is_fraud"]
    assert 0.011 < np.mean(labels.to_numpy()) < 0.019
    labels = FraudSource(rows=40000, fraud_rate=0.05, seed=3).load().table["is_fraud"]
    assert 0.04 < np.mean(labels.to_numpy()) < 0.06


def test_fraud_schema_types_and_missing_values():
    loaded = FraudSource(rows=5000, seed=1).load()
    table, schema = loaded.table, loaded.schema
    assert isinstance(loaded, LoadedTable) and FraudSource.name == "fraud"
    assert schema.task == "binary" and schema.target == "is_fraud"
    assert table.column_names == [*schema.features, "is_fraud"]
    assert schema.categorical == ["merchant_category", "channel", "merchant_id"]
    for name in schema.numeric:
        assert pa.types.is_integer(table[name].type) or pa.types.is_floating(table[name].type)
    for name in schema.categorical:
        assert pa.types.is_string(table[name].type)
    assert set(table["is_fraud"].to_pylist()) == {0, 1}
    assert set(table["channel"].to_pylist()) == {"chip", "swipe", "online", "contactless"}
    assert 12 <= len(table["merchant_category"].drop_null().unique()) <= 20
    assert len(table["merchant_id"].unique()) > 300  # worth an embedding
    hours = table["hour"].to_numpy()
    assert hours.min() >= 0 and hours.max() <= 23
    assert 0.005 < table["distance_from_home_km"].null_count / 5000 < 0.03
    assert 0 < table["merchant_category"].null_count / 5000 < 0.03
    assert table["amount"].null_count == 0


def test_fraud_is_fast():
    FraudSource(rows=100).load()  # first use initializes pyarrow's numpy bridge
    start = time.perf_counter()
    FraudSource(rows=50000).load()
    assert time.perf_counter() - start < 1.0


def test_fraud_rejects_bad_parameters():
    assert "fraud_rate" in error_of(FraudSource, fraud_rate=1.5)
    assert "rows" in error_of(FraudSource, rows=0)


# --- scikit-learn ----------------------------------------------------------------------


def test_breast_cancer():
    source = SklearnSource(dataset="breast_cancer")
    loaded = source.load()
    assert source.name == "breast_cancer" and isinstance(source, DataSource)
    assert loaded.table.shape == (569, 31)
    assert loaded.schema.task == "binary" and loaded.schema.target == "target"
    assert "mean_radius" in loaded.schema.features and len(loaded.schema.numeric) == 30
    # sklearn's class names, benign the positive class as in its encoding (0 = malignant, 1 = benign)
    assert loaded.table["target"].to_pylist().count("benign") == 357
    assert loaded.table["target"].to_pylist().count("malignant") == 212
    assert loaded.schema.positive_label == "benign"


def test_digits_are_images():
    loaded = SklearnSource(dataset="digits").load()
    schema = loaded.schema
    assert loaded.table.shape == (1797, 65)
    assert schema.task == "multiclass" and schema.target == "digit"
    assert schema.image_shape == (1, 8, 8)
    assert list(schema.features) == [f"pixel_{i}" for i in range(64)]
    assert sorted(loaded.table["digit"].unique().to_pylist()) == list(range(10))


def test_unknown_sklearn_dataset_lists_the_valid_names():
    message = error_of(SklearnSource, dataset="iris")
    assert "'iris'" in message and "breast_cancer" in message and "digits" in message


# --- declared schemas ------------------------------------------------------------------


def test_declare_schema_defaults(churn):
    schema = declare_schema(churn, "churned", positive_label="Yes")
    assert schema.features == {"tenure": "numeric", "monthly": "numeric", "plan": "categorical"}
    assert schema.task == "binary" and schema.positive_label == "Yes"


@pytest.mark.parametrize(
    ("values", "task"),
    [([0, 1, 1, 0], "binary"), ([0, 1, 2, 5], "multiclass"), ([0.5, 1.5, 2.5, 3.0], "regression")],
)
def test_declare_schema_infers_the_task(values, task):
    table = pa.table({"x": [1.0, 2.0, 3.0, 4.0], "y": values})
    assert declare_schema(table, "y").task == task


def test_declare_schema_matches_a_command_line_label():
    table = pa.table({"x": [1.0, 2.0, 3.0], "y": [3, 7, 7]})
    assert declare_schema(table, "y", positive_label="7").positive_label == 7


def test_declare_schema_errors(churn):
    message = error_of(declare_schema, churn, "churn")
    assert "'churn'" in message and "churned" in message and "tenure" in message
    assert "'age'" in error_of(declare_schema, churn, "churned", features=["tenure", "age"])
    message = error_of(declare_schema, churn, "churned", categorical=["plan", "region"])
    assert "'region'" in message
    message = error_of(declare_schema, churn, "churned")
    assert "positive_label" in message and "No, Yes" in message
    message = error_of(declare_schema, churn, "churned", positive_label="Maybe")
    assert "'Maybe'" in message and "No, Yes" in message
    assert "'ordinal'" in error_of(declare_schema, churn, "churned", task="ordinal")
    # Text declared numeric is accepted here; validate_table then names any value that won't parse.
    schema = declare_schema(churn, "churned", categorical=[], positive_label="Yes")
    assert schema.features["plan"] == "numeric"


def test_long_column_lists_are_truncated():
    table = pa.table({f"c{i}": [1.0] for i in range(40)})
    message = error_of(declare_schema, table, "nope")
    assert "c0" in message and "more" in message and "c39" not in message


# --- files -----------------------------------------------------------------------------


def test_csv_with_string_target(tmp_path, churn):
    pcsv.write_csv(churn, tmp_path / "churn.csv")
    source = FileSource(path=str(tmp_path / "churn.csv"), target="churned", positive_label="Yes")
    loaded = source.load()
    assert source.name == "files"
    assert loaded.table.num_rows == 6
    assert loaded.schema.positive_label == "Yes" and loaded.schema.task == "binary"
    assert loaded.schema.categorical == ["plan"]
    assert loaded.table["plan"].null_count == 1  # an empty string cell is missing


def test_parquet_with_selected_features(tmp_path, churn):
    pq.write_table(churn, tmp_path / "churn.parquet")
    loaded = FileSource(
        path=str(tmp_path / "churn.parquet"),
        target="churned",
        features=["monthly", "plan"],
        positive_label="No",
    ).load()
    assert loaded.table.column_names == ["monthly", "plan", "churned"]


def test_glob_of_csvs_concatenates_and_promotes(tmp_path):
    for i in range(3):
        value = [1.5, 2.5] if i == 2 else [1, 2]  # int columns in two files, float in one
        pcsv.write_csv(pa.table({"x": value, "y": [0, 1]}), tmp_path / f"part{i}.csv")
    loaded = FileSource(path=str(tmp_path / "part*.csv"), target="y").load()
    assert loaded.table.num_rows == 6
    assert pa.types.is_floating(loaded.table["x"].type)


def test_hive_partitioned_parquet_directory(tmp_path):
    for country, rows in (("DE", 3), ("FR", 2)):
        folder = tmp_path / "sales" / f"country={country}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"x": [1.0] * rows, "y": [0, 1, 0][:rows]}), folder / "a.parquet")
    (tmp_path / "sales" / "_SUCCESS").touch()
    loaded = FileSource(path=str(tmp_path / "sales"), target="y").load()
    assert loaded.table.num_rows == 5
    assert sorted(set(loaded.table["country"].to_pylist())) == ["DE", "FR"]
    assert loaded.schema.features["country"] == "categorical"


def test_fsspec_memory_url(churn):
    fs = fsspec.filesystem("memory")
    with fs.open("/factory-test/churn.csv", "wb") as handle:
        pcsv.write_csv(churn, handle)
    try:
        loaded = FileSource(
            path="memory://factory-test/churn.csv", target="churned", positive_label="Yes"
        ).load()
        assert loaded.table.num_rows == 6
        message = error_of(FileSource(path="memory://factory-test/none.csv", target="y").load)
        assert "memory://factory-test/none.csv" in message
    finally:
        fs.rm("/factory-test", recursive=True)


def test_file_errors(tmp_path, churn):
    missing = tmp_path / "missing.csv"
    message = error_of(FileSource(path=str(missing), target="y").load)
    assert str(missing) in message
    assert "no files match" in error_of(FileSource(path=str(tmp_path / "*.csv"), target="y").load)
    assert "'json'" in error_of(FileSource, path="x.json", format="json", target="y")
    (tmp_path / "data.json").write_text("{}")
    message = error_of(FileSource(path=str(tmp_path / "data.json"), target="y").load)
    assert "data.json" in message and "data.source.format" in message
    (tmp_path / "broken.parquet").write_text("not parquet at all")
    message = error_of(FileSource(path=str(tmp_path / "broken.parquet"), target="y").load)
    assert "broken.parquet" in message and "parquet" in message
    pcsv.write_csv(churn, tmp_path / "churn.csv")
    message = error_of(FileSource(path=str(tmp_path / "churn.csv"), target="churn").load)
    assert "'churn'" in message and "churned" in message


# --- warehouse -------------------------------------------------------------------------


def test_demo_duckdb_warehouse(tmp_path):
    path = build_demo_warehouse(tmp_path / "demo" / "warehouse.duckdb", rows=500, seed=5)
    assert [p.name for p in path.parent.iterdir()] == ["warehouse.duckdb"]  # no temp files
    source = WarehouseSource(
        url=f"duckdb:///{path}", query="SELECT * FROM transactions", target="is_fraud"
    )
    loaded = source.load()
    assert source.name == "warehouse"
    assert loaded.table.equals(FraudSource(rows=500, seed=5).load().table)
    assert loaded.schema.task == "binary" and loaded.schema.features["channel"] == "categorical"
    small = WarehouseSource(
        url=f"duckdb:///{path}",
        query="SELECT amount, channel, is_fraud FROM transactions WHERE amount < 0",
        target="is_fraud",
    ).load()
    assert small.table.num_rows == 0  # empty results are the DataModule's to reject


def test_duckdb_in_memory_casts_decimals():
    query = "SELECT 1.5 AS x, 0 AS y UNION ALL SELECT 2.5, 1"
    loaded = WarehouseSource(url="duckdb:///:memory:", query=query, target="y").load()
    assert loaded.table["x"].type == pa.float64()


def test_sqlite_through_sqlalchemy(tmp_path):
    db = tmp_path / "crm.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE customers (tenure INTEGER, plan TEXT, churned TEXT)")
        con.executemany(
            "INSERT INTO customers VALUES (?, ?, ?)",
            [(1, "basic", "Yes"), (20, "pro", "No"), (3, None, "Yes"), (9, "pro", "No")],
        )
    con.close()
    loaded = WarehouseSource(
        url=f"sqlite:///{db}", query="SELECT * FROM customers", target="churned",
        positive_label="Yes",
    ).load()
    assert loaded.table.num_rows == 4
    assert loaded.schema.features == {"tenure": "numeric", "plan": "categorical"}
    bad_sql = WarehouseSource(url=f"sqlite:///{db}", query="SELECT * FROM nope", target="y")
    message = error_of(bad_sql.load)
    assert f"sqlite:///{db}" in message and "no such table: nope" in message


def test_missing_duckdb_file_says_how_to_build_the_demo(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    message = error_of(WarehouseSource(url=f"duckdb:///{path}", query="SELECT 1", target="y").load)
    assert str(path) in message and "scripts/make_demo_warehouse.py" in message


def test_bad_sql_on_duckdb(tmp_path):
    path = build_demo_warehouse(tmp_path / "w.duckdb", rows=50)
    bad_sql = WarehouseSource(url=f"duckdb:///{path}", query="SELECT * FROM nope", target="y")
    message = error_of(bad_sql.load)
    assert "nope" in message and str(path) in message


def test_unreachable_postgres_fails_fast_and_masks_the_password():
    url = "postgresql://u:secret@127.0.0.1:1/db"
    source = WarehouseSource(url=url, query="SELECT 1", target="y")
    start = time.perf_counter()
    message = error_of(source.load)
    assert time.perf_counter() - start < 10
    assert "secret" not in message and "postgresql://u:***@127.0.0.1:1/db" in message
    drivers = [d for d in ("psycopg", "psycopg2") if importlib.util.find_spec(d) is None]
    if len(drivers) == 2:  # no driver: the message names the one SQLAlchemy wanted
        assert "No module named 'psycopg" in message


def test_make_demo_warehouse_script(tmp_path):
    path = tmp_path / "w.duckdb"
    script = REPO / "scripts" / "make_demo_warehouse.py"
    result = subprocess.run(
        [sys.executable, str(script), "--rows", "300", "--seed", "3", "--path", str(path)],
        capture_output=True, text=True, check=True,
    )
    assert str(path) in result.stdout and "300" in result.stdout
    query = "SELECT * FROM transactions"
    loaded = WarehouseSource(url=f"duckdb:///{path}", query=query, target="is_fraud").load()
    assert loaded.table.num_rows == 300
