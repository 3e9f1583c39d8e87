"""Batch scoring with a real registered model (exported to ONNX) on real Parquet and CSV files.

One tiny fraud model is trained, registered, exported and promoted for the module; scoring runs in
process (``factory.serving.score``) except the command-line cases, run as ``scripts/score.py``.
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import factory
from factory import registry
from factory.data.fingerprint import table_fingerprint
from factory.data.sources import FraudSource
from factory.errors import DataError
from factory.serving.score import MANIFEST, score_files
from tests.conftest import REPO, script_env
from tests.integration.helpers import FAST_FRAUD

SCRIPT = str(REPO / "scripts" / "score.py")
ADDED = ["prediction", "score", "model_version"]


def _left(folder: Path) -> list[str]:
    """What is in ``folder`` (FACTORY_ROOT), the scoring's lineage events aside (``lineage/``: START, FAIL)."""
    return sorted(p.name for p in folder.iterdir() if p.name != "lineage")


@pytest.fixture(scope="module")
def reg(tmp_path_factory) -> Path:
    """A registry holding ``fraud_detection@1`` (production), exported to ONNX."""
    root = tmp_path_factory.mktemp("score-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACTORY_ROOT", str(root))
        result = factory.train(factory.compose("train", [*FAST_FRAUD, "baseline=null"]))
    assert result.status == "completed"
    path = root / "registry"
    version = registry.register(result.run_dir, registry=path)
    registry.export(version.ref, path)
    registry.promote(version.name, version.version, "production", registry=path)
    return path


@pytest.fixture(scope="module")
def models(reg) -> dict:
    return {backend: registry.load("fraud_detection@production", reg, backend=backend) for backend in ("onnx", "torch")}


@pytest.fixture(scope="module")
def rows() -> pa.Table:
    return FraudSource(rows=2500, seed=7).load().table  # with is_fraud: a column the model does not read


def parquet_dir(rows: pa.Table, where: Path, sizes=(1000, 900, 600)) -> Path:
    """``rows`` split over Parquet files, in path order (the last in a sub-folder; a ``_SUCCESS`` marker beside)."""
    (where / "sub").mkdir(parents=True)
    start = 0
    for i, n in enumerate(sizes):
        pq.write_table(rows.slice(start, n), where / ("sub" if i == 2 else "") / f"part-{i}.parquet")
        start += n
    (where / "_SUCCESS").write_text("")
    return where


def check_scored(output: Path, rows: pa.Table, expected: pd.DataFrame) -> pd.DataFrame:
    """The output directory read back: the input's columns then the added ones, scores as ``expected``'s."""
    got = pq.read_table(output).to_pandas()  # the manifest's _ prefix keeps it out of the dataset
    assert list(got.columns) == [*rows.column_names, *ADDED]
    pd.testing.assert_frame_equal(got[rows.column_names], rows.to_pandas())
    np.testing.assert_allclose(got["score"], expected["score"], atol=1e-6)
    clear = (expected["score"] - 0.5).abs() > 1e-6  # a score at the threshold may round either way
    assert (got["prediction"][clear] == expected["prediction"][clear]).all()
    assert (got["model_version"] == "fraud_detection@1").all()
    assert got["prediction"].dtype == np.int64 and got["score"].dtype == np.float32
    return got


def test_a_parquet_directory_scores_as_predict_on_the_whole_table(models, rows, tmp_path):
    source = parquet_dir(rows, tmp_path / "in")
    manifest = score_files(models["onnx"], source, tmp_path / "out", batch_rows=256)
    check_scored(tmp_path / "out", rows, models["torch"].predict(rows))
    assert manifest["output"]["files"] == [{"name": "part-00000.parquet", "rows": 2500}]  # files of one schema: one part
    assert [f["rows"] for f in manifest["input"]["files"]] == [1000, 900, 600]  # in path order
    assert manifest["backend"] == "onnx" and manifest["rows"] == 2500
    assert _left(tmp_path) == ["in", "out"]  # no temp directory left


def test_both_backends_write_the_same_output(models, rows, tmp_path):
    source = parquet_dir(rows, tmp_path / "in")
    score_files(models["onnx"], source, tmp_path / "onnx", batch_rows=1000)
    manifest = score_files(models["torch"], source, tmp_path / "torch", batch_rows=700)
    assert manifest["backend"] == "torch"
    onnx = pq.read_table(tmp_path / "onnx")
    torch = check_scored(tmp_path / "torch", rows, onnx.to_pandas())
    assert pq.read_table(tmp_path / "torch").schema.equals(onnx.schema)
    assert (torch["prediction"] == onnx.column("prediction").to_numpy()).mean() > 0.999


def test_a_glob_and_a_csv(models, rows, tmp_path):
    source = parquet_dir(rows, tmp_path / "in")
    manifest = score_files(models["onnx"], str(source / "part-*.parquet"), tmp_path / "glob")
    assert [Path(f["path"]).name for f in manifest["input"]["files"]] == ["part-0.parquet", "part-1.parquet"]
    picked = rows.slice(0, 1900)
    check_scored(tmp_path / "glob", picked, models["torch"].predict(picked))

    csv_rows = rows.slice(0, 700)
    pacsv.write_csv(csv_rows, tmp_path / "rows.csv")  # nulls as empty cells; integers as integers
    manifest = score_files(models["onnx"], tmp_path / "rows.csv", tmp_path / "csv", batch_rows=300)
    got = pq.read_table(tmp_path / "csv")
    assert manifest["rows"] == 700 and manifest["input"]["files"][0]["format"] == "csv"
    assert got.schema.field("hour").type == pa.float64()  # numeric features read as float64
    expected = models["torch"].predict(csv_rows)
    np.testing.assert_allclose(got.column("score").to_numpy(), expected["score"], atol=1e-6)


def test_the_manifest(models, rows, tmp_path):
    source = parquet_dir(rows, tmp_path / "in")
    manifest = score_files(models["onnx"], source, tmp_path / "out", batch_rows=512)
    text = (tmp_path / "out" / MANIFEST).read_text()
    written = json.loads(text, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert written == json.loads(json.dumps(manifest))
    assert written["model"] == {"name": "fraud_detection", "version": 1, "stage": "production",
                                "ref": "fraud_detection@1"}
    files = written["input"]["files"]
    assert [(Path(f["path"]).name, f["rows"], f["format"]) for f in files] == [
        ("part-0.parquet", 1000, "parquet"), ("part-1.parquet", 900, "parquet"), ("part-2.parquet", 600, "parquet")]
    assert all(f["bytes"] == Path(f["path"]).stat().st_size for f in files)
    assert written["input"]["given"] == str(source) and written["input"]["fingerprint"].startswith("sha256:")
    assert "not its content" in written["input"]["fingerprint_method"]
    assert written["rows"] == 2500 and written["batch_rows"] == 512
    assert written["output"]["columns"] == ADDED and sum(f["rows"] for f in written["output"]["files"]) == 2500
    assert written["started"] <= written["finished"] and written["seconds"] > 0
    assert written["rows_per_s"] == pytest.approx(2500 / written["seconds"], rel=0.05)  # seconds: 3 decimals
    assert written["factory_version"] == factory.__version__
    # The same files give the same fingerprint; a rewritten one another.
    again = score_files(models["onnx"], source, tmp_path / "again")
    assert again["input"]["fingerprint"] == written["input"]["fingerprint"]
    pq.write_table(rows.slice(0, 999), source / "part-0.parquet")
    assert score_files(models["onnx"], source, tmp_path / "changed")["input"]["fingerprint"] != \
        written["input"]["fingerprint"]


def _bad(rows: pa.Table, where: Path, case: str) -> tuple[str, str]:
    """Input with one bad thing in its second file (after a good one), and the message expected."""
    first, second = rows.slice(0, 1000), rows.slice(1000, 800)
    where.mkdir()
    pq.write_table(first, where / "a.parquet")
    bad = where / "b.parquet"
    if case == "missing column":
        pq.write_table(second.drop_columns(["hour"]), bad)
        return str(where), rf"^{bad}: lacks the feature column\(s\) the model reads: 'hour'$"
    if case == "infinity":
        amount = second.column("amount").to_numpy().copy()
        amount[700] = np.inf  # in the second batch of 512
        pq.write_table(second.set_column(0, "amount", pa.array(amount)), bad)
        return str(where), rf"^{bad}: row 701: column 'amount' is inf; the model reads finite numbers"
    if case == "text in a numeric column":
        amount = [str(v) for v in second.column("amount").to_pylist()]
        amount[599] = "12,50"
        pq.write_table(second.set_column(0, "amount", pa.array(amount)), bad)
        return str(where), rf"^{bad}: row 600: column 'amount' holds '12,50', not a number$"
    if case == "csv":
        bad = where / "b.csv"
        pacsv.write_csv(second, bad)
        lines = bad.read_text().splitlines()
        cells = lines[1 + 650].split(",")
        cells[second.column_names.index("card_age_days")] = "old"
        lines[1 + 650] = ",".join(cells)
        bad.write_text("\n".join(lines) + "\n")
        return str(where), rf"^{bad}: row 651: column 'card_age_days' holds 'old', not a number$"
    if case == "missing input":
        return str(where / "nowhere.parquet"), r"^input=\S+/nowhere\.parquet: no such file or directory$"
    if case == "empty glob":
        return str(where / "*.csv"), r"^input=\S+/\*\.csv: the glob matches no file$"
    raise AssertionError(case)


BAD = ["missing column", "infinity", "text in a numeric column", "csv", "missing input", "empty glob"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_names_file_row_and_column_and_leaves_no_output(models, rows, tmp_path, case):
    source, message = _bad(rows, tmp_path / "in", case)
    with pytest.raises(DataError, match=message) as info:
        score_files(models["onnx"], source, tmp_path / "out", batch_rows=512)
    assert "\n" not in str(info.value)
    assert _left(tmp_path) == ["in"]  # no output, no temp directory


def test_an_existing_output_is_never_overwritten(models, rows, tmp_path):
    source = parquet_dir(rows, tmp_path / "in")
    score_files(models["onnx"], source, tmp_path / "out")
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    with pytest.raises(DataError, match=r"^output=\S+/out: exists and is not empty; a completed scoring is never"):
        score_files(models["onnx"], source, tmp_path / "out")
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()} == before
    (tmp_path / "empty").mkdir()  # made beforehand, empty: fine
    assert score_files(models["onnx"], source, tmp_path / "empty")["rows"] == 2500


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, cwd=tmp_path,
                          env=script_env(tmp_path), timeout=300)


def test_cli_scores_a_data_config(reg, models, tmp_path):
    done = cli(tmp_path, "model=fraud_detection@production", f"registry={reg}", "data=fraud",
               "data.source.rows=1500", "seed=3", "output=scored", "batch_rows=400")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("scored 1,500 rows -> ") and "(fraud_detection@1, onnx, " in done.stdout
    assert done.stdout.rstrip().endswith(f"; manifest {MANIFEST}")
    assert done.stderr == ""  # not a terminal: no progress bar
    written = json.loads((tmp_path / "scored" / MANIFEST).read_text())
    assert written["input"]["name"] == "data=fraud" and written["input"]["config"]["rows"] == 1500
    table = FraudSource(rows=1500, seed=3).load().table
    assert written["input"]["fingerprint"] == f"sha256:{table_fingerprint(table)}"
    check_scored(tmp_path / "scored", table, models["torch"].predict(table))


@pytest.mark.parametrize("args, message", [
    (["output=out"], r"^error: input: give input=<file, glob or directory> or data=<config>, one of the two$"),
    (["input=in", "output=out", "backend=tf"], r"^error: backend: 'tf' is not one of"),
    (["input=in/b.parquet", "output=out"], r"^error: \S+/in/b\.parquet: row 701: column 'amount' is inf;"),
])
def test_cli_bad_input_is_one_line_and_exit_2(reg, rows, tmp_path, args, message):
    _bad(rows, tmp_path / "in", "infinity")
    done = cli(tmp_path, "model=fraud_detection@production", f"registry={reg}", *args)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stdout == ""  # nothing claims success
    assert re.match(message, done.stderr), done.stderr
    assert not (tmp_path / "out").exists() and _left(tmp_path) == ["in"]


def test_cli_sigterm_leaves_no_output_and_no_temp(reg, tmp_path):
    proc = subprocess.Popen([sys.executable, SCRIPT, "model=fraud_detection@production", f"registry={reg}",
                             "data=fraud", "data.source.rows=400000", "batch_rows=500", "output=scored"],
                            cwd=tmp_path, env=script_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".scored.partial-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # a few batches written
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and out == "", err
    assert _left(tmp_path) == []


API = """
import sys
from factory import registry
from factory.serving.score import score_files
model = registry.load("fraud_detection@production", sys.argv[1], backend="onnx")
score_files(model, "in", "scored", batch_rows=500)
"""


@pytest.mark.parametrize("caller", ["scripts/score.py", "score_files in a program"])
def test_sigterm_after_a_part_is_written_leaves_no_output_and_no_temp(reg, tmp_path, caller):
    """A long run signalled once its first part is complete and the next one open (as a reviewer's run
    was): exit 143, nothing at the output, no temp directory, from the script and from the Python API."""
    (tmp_path / "in").mkdir()
    pq.write_table(FraudSource(rows=1000, seed=1).load().table, tmp_path / "in" / "a.parquet")
    big = FraudSource(rows=300_000, seed=2).load().table
    hour = big.schema.get_field_index("hour")  # another column type: a new part starts at this file
    pq.write_table(big.set_column(hour, "hour", big.column("hour").cast(pa.int32())), tmp_path / "in" / "b.parquet")
    command = [SCRIPT, "model=fraud_detection@production", f"registry={reg}", "input=in", "batch_rows=500",
               "output=scored"] if caller == "scripts/score.py" else ["-c", API, str(reg)]
    proc = subprocess.Popen([sys.executable, *command], cwd=tmp_path, env=script_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".scored.partial-*/part-00001.parquet")) and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # a few batches into the second part
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)  # a second one, as an impatient user or scheduler sends, during the cleanup
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and out == "", err
    assert _left(tmp_path) == ["in"]
