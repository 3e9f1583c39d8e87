"""Bad data through the ``files`` source: one line naming the file, column or rows, the run failed.

Issue 9: tables that trained nothing, changed a column's type silently, carried infinities
into NaN metrics, or crashed with a message about something else.
"""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from factory import compose, registry
from factory.errors import DataError, FactoryError
from factory.training.recipe import run
from tests.integration.helpers import failed_run, manifest, run_dirs, run_script

FILES = ["data=files", "logger=csv", "trainer=debug"]


def _failed_run(root, overrides, error, match):
    return failed_run(root, FILES + overrides, error, match)


def _numbers(rows: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=rows).round(3), "y": np.arange(rows) % 2}


def test_a_table_of_only_the_target_trains_nothing(isolated_env):
    path = isolated_env / "only.csv"
    pacsv.write_csv(pa.table({"y": [0, 1] * 20}), path)
    message = _failed_run(isolated_env, [f"data.source.path={path}", "data.source.target=y"],
                          DataError, "no feature columns")
    assert str(path) in message and "'y'" in message


def test_stray_text_in_a_numeric_column_is_reported(isolated_env):
    values = [str(v) for v in _numbers(300)["x"]]
    for row, text in ((17, "n.a."), (150, "12 EUR"), (299, "?")):
        values[row] = text
    path = isolated_env / "stray.csv"
    path.write_text("x,y\n" + "".join(f"{v},{i % 2}\n" for i, v in enumerate(values)))
    message = _failed_run(isolated_env, [f"data.source.path={path}", "data.source.target=y"],
                          DataError, r"numeric feature 'x' has 3 non-numeric value\(s\)")
    assert "'n.a.' (row 17)" in message and "'12 EUR' (row 150)" in message and "'?' (row 299)" in message
    assert "data.source.categorical" in message


def test_parquet_directory_types_come_from_every_file(isolated_env):
    folder = isolated_env / "parts"
    folder.mkdir()
    pq.write_table(pa.table({"x": ["1.5", "2.5"] * 10, "y": [0, 1] * 10}), folder / "a.parquet")
    pq.write_table(pa.table({"x": [3.5, 4.5] * 10, "y": [0, 1] * 10}), folder / "b.parquet")
    message = _failed_run(isolated_env, [f"data.source.path={folder}", "data.source.target=y"],
                          DataError, "column 'x' has different types")
    assert "string in a.parquet" in message and "double in b.parquet" in message


def test_glob_over_files_with_different_columns(isolated_env):
    pacsv.write_csv(pa.table({"x": [1.0, 2.0] * 10, "y": [0, 1] * 10}), isolated_env / "a.csv")
    pacsv.write_csv(pa.table({"z": [1.0, 2.0] * 10, "y": [0, 1] * 10}), isolated_env / "b.csv")
    message = _failed_run(isolated_env, [f"data.source.path={isolated_env}/*.csv", "data.source.target=y"],
                          DataError, "hold different columns")
    assert "'x' missing from" in message and "b.csv" in message
    assert "'z' missing from" in message and "a.csv" in message


def test_infinite_feature_value_is_a_data_error(isolated_env):
    table = _numbers(40)
    table["x"][7] = np.inf
    path = isolated_env / "inf.csv"
    pacsv.write_csv(pa.table(table), path)
    _failed_run(isolated_env, [f"data.source.path={path}", "data.source.target=y"],
                DataError, r"numeric feature 'x' has 1 infinite value\(s\), the first inf at row 7")


def test_non_finite_metrics_fail_the_run(isolated_env):
    # Finite data whose squared error overflows float: every val/test metric is NaN or inf.
    table = _numbers(200)
    table["y"] = np.full(200, 1e300) * (np.arange(200) % 3 + 1)
    path = isolated_env / "huge.parquet"
    pq.write_table(pa.table(table), path)
    _failed_run(isolated_env, [f"data.source.path={path}", "data.source.target=y",
                               "data.source.task=regression"], FactoryError, "non-finite metrics")
    (run_dir,) = run_dirs(isolated_env)
    with pytest.raises(FactoryError, match="status 'failed'"):  # nothing for the registry to pick
        registry.register(run_dir, registry=isolated_env / "registry")


def test_two_rows_are_too_few_to_split(isolated_env):
    path = isolated_env / "two.csv"
    path.write_text("x,y\n1.0,0\n2.0,1\n")
    _failed_run(isolated_env, [f"data.source.path={path}", "data.source.target=y"], DataError,
                r"too small to split: its 2 row\(s\) give train 2, val 0, test 0 rows with "
                r"data.val_fraction=0.15, data.test_fraction=0.15")


def test_duplicate_column_names(isolated_env):
    path = isolated_env / "dup.csv"
    path.write_text("x,x,y\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(20)))
    message = _failed_run(isolated_env, [f"data.source.path={path}", "data.source.target=y"],
                          DataError, "column 'x' appears 2 times")
    assert str(path) in message


def test_latin1_csv_names_the_encoding_and_trains_with_it(isolated_env):
    path = isolated_env / "cities.csv"
    rows = "".join(f"{city},{i},{i % 2}\n" for i, city in enumerate(["München", "Köln", "Düsseldorf"] * 14))
    path.write_bytes(("city,x,y\n" + rows).encode("latin-1"))
    overrides = [f"data.source.path={path}", "data.source.target=y"]
    message = _failed_run(isolated_env, overrides, DataError, "is not valid utf-8 text")
    assert str(path) in message and "column 'city'" in message and "data.source.encoding" in message
    result = run(compose("train", FILES + overrides + ["data.source.encoding=latin-1"]))
    assert result.status == "completed"
    record = manifest(result.run_dir)
    assert record["data"]["rows"]["train"] > 0


def test_infinity_through_the_cli_is_one_line_exit_2(tmp_path):
    table = _numbers(40)
    table["x"][3] = -np.inf
    pacsv.write_csv(pa.table(table), tmp_path / "inf.csv")
    result = run_script(tmp_path, "train.py", *FILES, f"data.source.path={tmp_path / 'inf.csv'}",
                        "data.source.target=y")
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: numeric feature 'x' has 1 infinite value(s), the first -inf at row 3; "
                      "drop those rows or replace the values"]
    assert "Traceback" not in result.stderr
    (run_dir,) = run_dirs(tmp_path)
    assert manifest(run_dir)["status"] == "failed"
    assert not (run_dir / "metrics.json").exists()
    json.loads((run_dir / "run.json").read_text(), parse_constant=pytest.fail)  # strict JSON
