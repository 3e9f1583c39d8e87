"""Planted PII reaches no file: a CSV with known emails, names and phone numbers is trained on, reported,
registered (with its ONNX export), served and batch-scored, and every file under the test's folder is then
searched for the planted values: bytes, Parquet values, checkpoints as torch loads them, zip members.

The planted values carry markers (``zqpii`` in every email and name, ``+44 20 7946`` / ``442079460`` in
every phone number): no marker anywhere, in any case, means no planted value, nor a part of one, anywhere.
The key never appears either.
"""
from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from tests.integration import serve_helpers

pytestmark = pytest.mark.slow  # a 1-epoch run, a report (papermill), an ONNX export and a server: ~60 s

KEY = "planted-test-key-0123456789abcdef"
MARKERS = ("zqpii", "+44 20 7946", "442079460", "02079460")
ROWS = 300
PII = ["+data.curation.columns.customer_email.pii=hash", "+data.curation.columns.customer_name.pii=drop",
       "+data.curation.columns.phone.pii=hash",
       "+data.curation.columns.amount.min=0"]  # row 5's negative amount: a quarantined row, written with its PII


def _email(i: int) -> str:
    return f"Zqpii.{i:04d}.Ann@Example.org"


def _planted_csv(path: Path) -> pa.Table:
    """The fraud generator's rows plus three PII columns of unique planted values; row 5 breaks ``amount >= 0``."""
    from factory.data.sources import FraudSource

    table = FraudSource(rows=ROWS, seed=7).load().table
    amount = table.column("amount").to_pylist()
    amount[5] = -1.0
    table = table.set_column(table.schema.get_field_index("amount"), "amount", pa.array(amount))
    table = table.append_column("customer_email", pa.array([_email(i) for i in range(ROWS)]))
    table = table.append_column("customer_name", pa.array([f"Zqpii Name{i:04d}" for i in range(ROWS)]))
    table = table.append_column("phone", pa.array([f"+44 20 7946 {i:04d}" for i in range(ROWS)]))
    path.parent.mkdir(parents=True)
    pcsv.write_csv(table, path)
    return table


def _texts(path: Path) -> list[bytes]:
    """The file's bytes, lowercased, and what it holds once decoded (Parquet values, a checkpoint's objects,
    zip members, gzip content): a value stored compressed is found too."""
    data = path.read_bytes()
    texts = [data]
    if data[:4] == b"PAR1":
        texts.append(str(pq.read_table(path).to_pylist()).encode())
    if path.suffix in (".ckpt", ".pt", ".pth"):
        import torch

        texts.append(repr(torch.load(path, map_location="cpu", weights_only=False)).encode())
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            texts.extend(archive.read(name) for name in archive.namelist())
    if data[:2] == b"\x1f\x8b":
        texts.append(gzip.decompress(data))
    return [text.lower() for text in texts]


def _leaks(root: Path, skip: Path) -> list[str]:
    needles = [m.lower().encode() for m in (*MARKERS, KEY)]
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink() or skip in path.parents:
            continue
        for text in _texts(path):
            found += [f"{path.relative_to(root)}: {needle.decode()}" for needle in needles if needle in text]
    return sorted(set(found))


def test_planted_pii_is_in_no_file_written(tmp_path, monkeypatch):
    from factory import compose, registry, train
    from factory.data.curation.pii import hash_value
    from factory.reports import run_report, to_spec
    from factory.reports.spec import compose_report
    from factory.serving.request_log_files import log_dir, read_request_log
    from factory.serving.score import score_files

    monkeypatch.setenv("FACTORY_PII_KEY", KEY)
    source = tmp_path / "source" / "transactions.csv"
    planted = _planted_csv(source)
    features = [c for c in planted.column_names if c not in ("is_fraud", "customer_name")]

    # train (wandb offline), with the email and phone hashed features, the name dropped
    result = train(compose("train", [
        "data=files", f"data.source.path={source}", "data.source.target=is_fraud", *PII,
        "logger=wandb", "trainer.max_epochs=1", "baseline=null", "task_name=pii_demo"]))
    assert result.status == "completed"
    run_dir = Path(result.run_dir)
    assert list((run_dir / "wandb").glob("offline-run-*/*.wandb"))
    assert list((tmp_path / "data" / "quarantine").glob("*.parquet"))  # row 5, its pii hashed or dropped

    # a report on the run
    spec = to_spec(compose_report("run_report", [f"report.parameters.run_dir={run_dir}"]).report)
    assert run_report(spec, tmp_path / "reports").html.is_file()

    # registration, with the ONNX export the server scores through
    version = registry.register(run_dir, "pii_demo", export=True)
    model = registry.load(version.ref, backend="onnx")
    assert model.features == features

    # batch scoring of the raw file: hashed as in training, the dropped column gone
    manifest = score_files(model, source, tmp_path / "scored")
    scored = pq.read_table(tmp_path / "scored")
    assert "customer_name" not in scored.column_names and manifest["rows"] == ROWS
    assert scored.column("customer_email")[0].as_py() == hash_value(_email(0), KEY.encode())

    # the notebook API (torch) on raw rows: hashed as in training too
    in_python = registry.load(version.ref).predict(planted.slice(0, 3).to_pandas())
    assert "customer_name" not in in_python.columns
    assert in_python["score"].tolist() == pytest.approx(scored.column("score").to_pylist()[:3], abs=1e-5)

    # serving: raw values in, scored as the batch job scored them, the request log flushed at stop
    server = serve_helpers.start(tmp_path, f"model={version.ref}", "log.flush_interval_s=0.1")
    try:
        rows = planted.slice(0, 3).select(features).to_pylist()
        answer = httpx.post(server.url + "/predict", json={"rows": rows}, timeout=30)
        assert answer.status_code == 200, answer.text
        served = [p["score"] for p in answer.json()["predictions"]]
        assert served == pytest.approx(scored.column("score").to_pylist()[:3], abs=1e-5)
        named = httpx.post(server.url + "/predict", json={"rows": [{**rows[0], "customer_name": "Zqpii X"}]})
        assert named.status_code == 400 and "customer_name" in named.text  # not a feature: refused, not logged
    finally:
        assert server.stop() == 0, server.output()
    logged = read_request_log(log_dir(tmp_path / "serving", "pii_demo"))
    assert logged.num_rows == 3
    assert logged.column("customer_email").to_pylist() == [hash_value(_email(i), KEY.encode()) for i in range(3)]

    # a server without the key refuses to start, in one line naming the variable
    monkeypatch.delenv("FACTORY_PII_KEY")
    refused = serve_helpers.run_serve(tmp_path, f"model={version.ref}")
    assert refused.returncode == 2 and "FACTORY_PII_KEY" in refused.stderr, refused.stderr
    assert KEY not in refused.stderr + refused.stdout

    written = {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()}
    assert {"outputs", "reports", "registry", "serving", "scored", "data"} <= written, written
    assert _leaks(source.parent, skip=tmp_path / "none")  # the search finds what is there
    assert _leaks(tmp_path, skip=source.parent) == []
