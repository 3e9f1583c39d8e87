"""Bad input on the command line: one line on stderr naming the key, exit code 2, no torch."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, script_env


def _train(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts/train.py"), *overrides],
                          capture_output=True, text=True, env=script_env(tmp_path), cwd=tmp_path, timeout=60)


@pytest.mark.parametrize("overrides, expected", [
    (["model.net.hiden_dims=[1]"], "error: model.net.hiden_dims: unknown key"),
    (["trainer.max_epochs=abc"], "error: trainer.max_epochs: expected int, got str 'abc'"),
    (["data=nope"], "error: data/nope: no such config (available: breast_cancer, digits, files, files_stream, fraud, text, warehouse)"),
    (["logger=null"], "error: logger=null: a config group takes one of its options (csv, mlflow, tensorboard, "
                      "wandb); to drop it, write ~logger"),
    (["data=files", "data.source.target=y"], "error: data.source.path: missing required value"),
    (["trainer.devices="], "error:"),
])
def test_bad_override_is_one_line_and_exit_2(tmp_path, overrides, expected):
    result = _train(tmp_path, *overrides)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(expected)
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("run.json"))


def test_config_errors_do_not_import_torch(tmp_path):
    """A config error must answer before torch loads (python -X importtime lists every import)."""
    result = subprocess.run([sys.executable, "-X", "importtime", str(REPO / "scripts/train.py"),
                             "trainer.max_epochs=abc"], capture_output=True, text=True,
                            env=script_env(tmp_path), cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "torch" not in imported and "pytorch_lightning" not in imported


def test_help_and_cfg_job_answer(tmp_path):
    assert "data: breast_cancer, digits, files, files_stream, fraud, text, warehouse" in _train(tmp_path, "--help").stdout
    out = _train(tmp_path, "--cfg", "job", "experiment=digits").stdout
    assert "factory.models.SmallCNN" in out
