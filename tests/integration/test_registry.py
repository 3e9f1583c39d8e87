"""The model registry on a real run: register, list, show, promote, load, and through the CLI.

One tiny diagnosis run (1 epoch) is trained for the module; each test uses its own registry.
"""
from __future__ import annotations

import getpass
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import factory
from factory import registry
from factory.errors import FactoryError
from tests.conftest import REPO, script_env
from tests.integration.helpers import trained_run

SCRIPT = str(REPO / "scripts" / "registry.py")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("registry-run")
    return trained_run(root)


def cli(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, cwd=tmp_path,
                          env=env or script_env(tmp_path), timeout=300)


def copy_run(run_dir: Path, tmp_path: Path, status: str | None = None, error: str | None = None) -> Path:
    """A copy of the module's run under ``tmp_path/outputs`` (optionally with another status)."""
    copy = tmp_path / "outputs" / "diagnosis" / run_dir.name
    shutil.copytree(run_dir, copy)
    if status:
        record = json.loads((copy / "run.json").read_text())
        record.update(status=status, error=error)
        (copy / "run.json").write_text(json.dumps(record))
    return copy


def test_register_twice_gives_versions_with_lineage(run_dir, tmp_path):
    reg = tmp_path / "reg"
    first = registry.register(run_dir, registry=reg)
    second = registry.register(run_dir.name, registry=reg, root=run_dir.parents[2])  # by run id
    assert (first.name, first.version, second.version) == ("diagnosis", 1, 2)
    assert [v.version for v in registry.versions("diagnosis", reg)] == [1, 2]
    manifest = json.loads((run_dir / "run.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    meta = registry.show("diagnosis@2", reg)
    assert (meta["version"], meta["stage"], meta["run_id"], meta["run_dir"]) == (2, "none", run_dir.name, str(run_dir))
    assert meta["data"]["fingerprint"] == manifest["data"]["fingerprint"]
    assert meta["metrics"]["test/accuracy"] == metrics["test"]["test/accuracy"]
    assert meta["config"]["task_name"] == "diagnosis" and meta["config"]["trainer"]["max_epochs"] == 1
    assert meta["created_by"] == getpass.getuser()
    assert second.metric == {"name": "val/loss", "mode": "min", "val": metrics["val"]["val/loss"],
                             "test": metrics["test"]["test/loss"]}
    # The checkpoint is copied in: one file, byte-identical to the run's best.
    ckpt = second.checkpoint
    assert ckpt.is_file() and ckpt.read_bytes() == Path(manifest["best_checkpoint"]).read_bytes()
    assert meta["checkpoint"]["source_format"] == "file" and len(meta["checkpoint"]["sha256"]) == 64
    assert [(e["action"], e["version"]) for e in registry.audit(reg)] == [("register", 1), ("register", 2)]
    # A name of one's own.
    assert registry.register(run_dir, name="cancer", registry=reg).ref == "cancer@1"


def test_cli_register_list_and_show(run_dir, tmp_path):
    reg = str(tmp_path / "reg")
    out = cli(tmp_path, "register", str(run_dir), "--registry", reg)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"registered diagnosis v1 (run {run_dir.name}, val/loss ")
    env = {**script_env(tmp_path), "FACTORY_REGISTRY": reg}  # the env var instead of --registry
    assert cli(tmp_path, "register", str(run_dir), "--name", "cancer", env=env).returncode == 0
    listed = cli(tmp_path, "--registry", reg, "list", "--json")
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["version"], r["stage"]) for r in rows] == [("cancer", 1, "none"), ("diagnosis", 1, "none")]
    table = cli(tmp_path, "list", env=env).stdout
    assert "diagnosis" in table and "val/loss" in table and run_dir.name in table
    shown = json.loads(cli(tmp_path, "show", "cancer", "--json", env=env).stdout)
    assert (shown["name"], shown["version"], shown["run_id"]) == ("cancer", 1, run_dir.name)
    text = cli(tmp_path, "show", "diagnosis@1", env=env).stdout
    fingerprint = json.loads((run_dir / "run.json").read_text())["data"]["fingerprint"]
    for expected in (fingerprint, run_dir.name, str(run_dir), "stage", "none", "task_name: diagnosis", "accuracy"):
        assert expected in text


def test_promote_round_trip(run_dir, tmp_path):
    reg = str(tmp_path / "reg")
    for _ in range(2):
        assert cli(tmp_path, "register", str(run_dir), "--registry", reg).returncode == 0
    out = cli(tmp_path, "promote", "diagnosis", "1", "--stage", "production", "--registry", reg)
    assert out.returncode == 0 and out.stdout.strip() == "diagnosis v1: none -> production"
    assert cli(tmp_path, "promote", "diagnosis", "2", "--stage", "staging", "--registry", reg).returncode == 0
    assert registry.get("diagnosis@staging", reg).version == 2
    out = cli(tmp_path, "promote", "diagnosis", "2", "--stage", "production", "--registry", reg)
    assert out.stdout.splitlines() == ["diagnosis v2: staging -> production", "diagnosis v1: production -> archived"]
    assert {v.version: v.stage for v in registry.versions("diagnosis", reg)} == {1: "archived", 2: "production"}
    assert registry.get("diagnosis@production", reg).version == 2
    log = registry.audit(reg)
    assert [(e["action"], e["version"], e["details"].get("to")) for e in log[2:]] == [
        ("promote", 1, "production"), ("promote", 2, "staging"), ("promote", 2, "production"),
        ("archive", 1, "archived")]
    out = cli(tmp_path, "promote", "diagnosis", "2", "--stage", "production", "--registry", reg)
    assert out.stdout.strip() == "diagnosis v2 is already production" and len(registry.audit(reg)) == len(log)


def test_load_production_predicts_as_the_run_did(run_dir, tmp_path):
    reg = tmp_path / "reg"
    registry.register(run_dir, registry=reg)
    v2 = registry.register(run_dir, registry=reg)
    registry.promote("diagnosis", v2.version, "production", reg)
    loaded = registry.load("diagnosis@production", reg)
    assert loaded.ref == "diagnosis@2" and loaded.version.stage == "production"
    assert not loaded.model.training and loaded.task == "binary" and loaded.class_labels == ["malignant", "benign"]
    expected = factory.load_run(run_dir).predictions("test")  # from the run's own checkpoint
    test_rows = loaded.datamodule().split_table("test")
    got = loaded.predict(test_rows)
    np.testing.assert_array_equal(got["score"].to_numpy(), expected["score"].to_numpy())
    np.testing.assert_array_equal(got["prediction"].to_numpy(), expected["prediction"].to_numpy())
    # Raw rows without the target, as new data arrives: the same scores.
    raw = test_rows.drop_columns([loaded.preprocessor.schema.target]).to_pandas()
    scored = loaded.predict(raw)
    assert "target" not in scored and list(scored.columns[:len(loaded.features)]) == loaded.features
    np.testing.assert_array_equal(scored["score"].to_numpy(), expected["score"].to_numpy())
    assert registry.load("diagnosis", reg).ref == "diagnosis@2"  # latest
    assert registry.load("diagnosis@1", reg).ref == "diagnosis@1"


def test_registry_survives_deleting_the_run(run_dir, tmp_path):
    copy = copy_run(run_dir, tmp_path)
    version = registry.register(copy, registry=tmp_path / "reg")
    assert version.metadata()["checkpoint"]["source"].startswith(str(copy))  # the copy, not the original
    shutil.rmtree(tmp_path / "outputs")
    loaded = registry.load("diagnosis@1", tmp_path / "reg")
    assert not loaded.model.training


def test_altered_checkpoint_is_refused_on_load(run_dir, tmp_path):
    version = registry.register(run_dir, registry=tmp_path / "reg")
    with open(version.checkpoint, "ab") as f:
        f.write(b"tampered")
    with pytest.raises(FactoryError, match=r"diagnosis@1: checkpoint .* changed since it was registered"):
        registry.load("diagnosis", tmp_path / "reg")


@pytest.mark.parametrize("status, error, message", [
    ("failed", "RuntimeError: out of memory", "has status 'failed', not 'completed': RuntimeError: out of memory"),
    ("running", None, "has status 'running', not 'completed' (still running"),
])
def test_cli_refuses_a_run_that_did_not_complete(run_dir, tmp_path, status, error, message):
    copy = copy_run(run_dir, tmp_path, status, error)
    out = cli(tmp_path, "register", str(copy), "--registry", str(tmp_path / "reg"))
    assert out.returncode == 2 and out.stdout == ""
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"error: run {run_dir.name} {message}")
    assert line.endswith("; only completed runs can be registered")
    assert registry.versions(registry=tmp_path / "reg") == []


@pytest.mark.parametrize("args, message", [
    (["show", "nope"], "no model named 'nope' (models: diagnosis)"),
    (["show", "diagnosis@9"], "model 'diagnosis' has no version 9 (versions: 1)"),
    (["load", "diagnosis@production"], "model 'diagnosis' has no version in production (stages: v1 none)"),
    (["show", "diagnosis@prod"], "after '@' comes a version number, 'latest' or a stage"),
    (["promote", "diagnosis", "5", "--stage", "staging"], "model 'diagnosis' has no version 5"),
    (["promote", "diagnosis", "1", "--stage", "live"], "argument --stage: invalid choice: 'live'"),
    (["promote", "diagnosis", "one", "--stage", "staging"], "argument version: invalid int value: 'one'"),
    (["register", "no-such-run"], "no run 'no-such-run'"),
    (["register", "RUN", "--name", "bad/name"], "model name 'bad/name'"),
])
def test_cli_bad_input_is_one_line_and_exit_2(run_dir, tmp_path, args, message):
    reg = str(tmp_path / "reg")
    registry.register(run_dir, registry=reg)
    out = cli(tmp_path, *[str(run_dir) if a == "RUN" else a for a in args], "--registry", reg)
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("error: ") and message in out.stderr
    assert [v.version for v in registry.versions(registry=reg)] == [1]


def test_two_processes_registering_at_once_lose_nothing(run_dir, tmp_path):
    reg = str(tmp_path / "reg")
    env = script_env(tmp_path)
    processes = [subprocess.Popen([sys.executable, SCRIPT, "register", str(run_dir), "--registry", reg],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err for _, err in outputs]
    said = sorted(out.split(" (")[0] for out, _ in outputs)
    assert said == ["registered diagnosis v1", "registered diagnosis v2"]
    assert [v.version for v in registry.versions("diagnosis", reg)] == [1, 2]
    assert sorted(e["version"] for e in registry.audit(reg) if e["action"] == "register") == [1, 2]
    assert all(v.checkpoint.is_file() for v in registry.versions(registry=reg))
    assert list((tmp_path / "reg" / ".staging").iterdir()) == []


@pytest.mark.slow  # the CLI process imports torch and Lightning (~10 s here)
def test_cli_load_summarizes_and_scores_a_file(run_dir, tmp_path):
    reg = str(tmp_path / "reg")
    registry.register(run_dir, registry=reg)
    registry.promote("diagnosis", 1, "production", reg)
    loaded = registry.load("diagnosis@production", reg)
    rows = loaded.datamodule().split_table("test").to_pandas()
    rows.drop(columns=["target"]).to_csv(tmp_path / "new.csv", index=False)
    out = cli(tmp_path, "load", "diagnosis@production", "--registry", reg, "--score", "new.csv", "--output", "scored.csv")
    assert out.returncode == 0, out.stderr
    summary, written = out.stdout.strip().splitlines()[-2:]
    assert summary.startswith("loaded diagnosis v1 (production): SupervisedModel for binary, ")
    assert "eval mode; 30 feature columns, classes ['malignant', 'benign']" in summary
    assert written == f"scored {len(rows)} rows -> scored.csv"
    scored = pd.read_csv(tmp_path / "scored.csv")
    np.testing.assert_allclose(scored["score"], loaded.predict(rows)["score"], rtol=1e-6)
    missing = cli(tmp_path, "load", "diagnosis", "--registry", reg, "--score", "absent.csv")
    assert (missing.returncode, missing.stderr) == (2, "error: --score: no such file: absent.csv\n")
