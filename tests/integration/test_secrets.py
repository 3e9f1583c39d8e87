"""No credential in any file a run writes: run.json, config.yaml, .hydra/, csv/, wandb/, sweep.json.

Real runs through the CLI: a DuckDB warehouse run that completes with a token in its URL
and one taken from the environment, and PostgreSQL runs that fail to connect (no driver
or no server here) after their files are written.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from factory.data.sources.warehouse import build_demo_warehouse
from tests.conftest import REPO, script_env

LITERAL = "hunter2-literal"
FROM_ENV = "s3cret-from-env"


def _train(tmp_path: Path, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = script_env(tmp_path)
    env.update(API_TOKEN=FROM_ENV, DB_PASSWORD=FROM_ENV)
    return subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *overrides], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=timeout)


def _files_holding(root: Path, *secrets: str) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
                  and any(s.encode() in p.read_bytes() for s in secrets))


def _run_dir(tmp_path: Path) -> Path:
    (manifest,) = (tmp_path / "outputs").rglob("run.json")
    return manifest.parent


def test_completed_run_writes_no_credential(tmp_path):
    database = build_demo_warehouse(tmp_path / "w.duckdb", rows=2000)
    result = _train(tmp_path, "data=warehouse", "logger=wandb", "trainer.max_epochs=1",
                    f'data.source.url="duckdb:///{database}?motherduck_token={LITERAL}"',
                    "data.source.query=\"SELECT * FROM transactions WHERE '${oc.env:API_TOKEN}' <> ''\"")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = _run_dir(tmp_path)
    assert (run_dir / "wandb").is_dir() and (run_dir / "csv").is_dir() and (run_dir / ".hydra").is_dir()
    assert _files_holding(tmp_path, LITERAL, FROM_ENV) == []
    config = (run_dir / "config.yaml").read_text()
    assert "motherduck_token=***" in config
    assert "'${oc.env:API_TOKEN}'" in config  # the reference, resolved again wherever it is read back
    assert any("motherduck_token=***" in arg for arg in json.loads((run_dir / "run.json").read_text())["command"])


def test_warehouse_error_masks_the_password_only(tmp_path):
    result = _train(tmp_path, "data=warehouse", "data.source.url=postgresql://u:p@127.0.0.1:9/db")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot query postgresql://u:***@127.0.0.1:9/db: ")
    assert line.count("***") == 1  # "No module named 'psycopg'", not "'***syco***g'"
    record = json.loads((_run_dir(tmp_path) / "run.json").read_text())
    assert record["status"] == "failed" and "u:p@" not in json.dumps(record)


def test_password_from_environment_is_never_written(tmp_path):
    result = _train(tmp_path, "data=warehouse", "data.source.url=postgresql://u:${oc.env:DB_PASSWORD}@127.0.0.1:9/db")
    assert result.returncode == 2
    assert FROM_ENV not in result.stderr
    run_dir = _run_dir(tmp_path)
    assert _files_holding(tmp_path, FROM_ENV) == []
    for written in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        assert "postgresql://u:${oc.env:DB_PASSWORD}@127.0.0.1:9/db" in written.read_text()


def test_literal_password_is_masked_in_every_file(tmp_path):
    result = _train(tmp_path, "-m", "data=warehouse", f"data.source.url=postgresql://u:{LITERAL}@127.0.0.1:9/db",
                    "seed=1,2")
    assert result.returncode == 1  # both trials failed
    assert len(list((tmp_path / "outputs").rglob("run.json"))) == 2
    assert list((tmp_path / "outputs").rglob("sweep.json"))
    assert list((tmp_path / "outputs").rglob("hydra.yaml"))
    assert _files_holding(tmp_path, LITERAL) == []
