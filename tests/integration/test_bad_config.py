"""Bad config values through the CLI: exit 2, one ``error:`` line naming the full key, before torch loads."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, script_env
from tests.integration.helpers import manifest, run_dirs, run_script

BASE = ["experiment=diagnosis", "logger=csv"]


def _cli(tmp_path, script: str, *overrides: str) -> subprocess.CompletedProcess:
    """Run a script under ``python -X importtime``: stderr then lists every module imported."""
    return subprocess.run([sys.executable, "-X", "importtime", str(REPO / "scripts" / script), *overrides],
                          capture_output=True, text=True, env=script_env(tmp_path), cwd=tmp_path, timeout=120)


def _refused_before_loading(result: subprocess.CompletedProcess, tmp_path, expected: str) -> None:
    lines = result.stderr.splitlines()
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")}
    said = [line for line in lines if not line.startswith("import time:")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert said == [f"error: {expected}"], said
    assert "torch" not in imported and "pytorch_lightning" not in imported  # answered before anything loads
    assert not run_dirs(tmp_path)  # no run.json: nothing started, nothing marked completed


@pytest.mark.parametrize("script, overrides, expected", [
    ("train.py", ["data.batch_size=0"], "data.batch_size: must be >= 1, got 0"),
    ("train.py", ["data.batch_size=-4"], "data.batch_size: must be >= 1, got -4"),
    ("train.py", ["model.net.dropout=1.5"], "model.net.dropout: must be in [0, 1), got 1.5"),
    ("train.py", ["model.net.hidden_dims=[-3]"], "model.net.hidden_dims[0]: must be >= 1, got -3"),
    ("plan.py", ["model=mlp_wide", "model.net.width=-5"], "model.net.width: must be >= 1, got -5"),
    ("train.py", ["model.optimizer.lr=abc"], "model.optimizer.lr: expected float, got str 'abc'"),
    ("train.py", ["model.optimizer.lr=-1"], "model.optimizer.lr: must be > 0, got -1"),
    ("train.py", ["trainer.precision=bogus"],
     "trainer.precision: 'bogus' is not one of: transformer-engine, transformer-engine-float16, 16-true, "
     "16-mixed, bf16-true, bf16-mixed, 32-true, 64-true, 64, 32, 16, '64', '32', '16', bf16"),
    ("train.py", ["trainer.max_epochs=0"],
     "trainer.max_epochs: 0 trains nothing while train=true (to only evaluate a checkpoint: train=false ckpt_path=...)"),
    ("train.py", ["trainer.max_steps=0"],
     "trainer.max_steps: 0 trains nothing while train=true (to only evaluate a checkpoint: train=false ckpt_path=...)"),
    ("train.py", ["trainer.limit_train_batches=0"], "trainer.limit_train_batches: 0 trains nothing while "
                                                    "train=true (to only evaluate a checkpoint: train=false ckpt_path=...)"),
    ("train.py", ["+new_key=1"], "new_key: unknown key; nothing reads it"),
    ("train.py", ["trainer.benchmark=false"], "trainer.benchmark: not in the config (to add it: +trainer.benchmark=...)"),
    ("train.py", ["model.net.hiden_dims=[64]"], "model.net.hiden_dims: unknown key (did you mean hidden_dims?); "
                                                "not an argument of factory.models.TabularMLP"),
])
def test_bad_value_is_one_line_before_anything_loads(tmp_path, script, overrides, expected):
    extra = BASE if script == "train.py" else []
    _refused_before_loading(_cli(tmp_path, script, *extra, *overrides), tmp_path, expected)


def test_an_added_trainer_argument_reaches_the_trainer(tmp_path):
    """``+trainer.benchmark=false`` (a Lightning Trainer argument) trains; the README's ``+key`` is true."""
    result = run_script(tmp_path, "train.py", *BASE, "trainer=debug", "+trainer.benchmark=false",
                        "+trainer.num_sanity_val_steps=0")
    assert result.returncode == 0, result.stderr[-2000:]
    (run_dir,) = run_dirs(tmp_path)
    assert manifest(run_dir)["status"] == "completed"
    assert "benchmark: false" in (run_dir / "config.yaml").read_text()


def test_a_fit_lightning_cannot_run_fails_the_run_in_one_line(tmp_path):
    """A share of batches that rounds to none: Lightning refuses it; the run is failed, not a traceback."""
    result = run_script(tmp_path, "train.py", *BASE, "trainer.limit_train_batches=0.001")
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: trainer: ") and "limit_train_batches" in errors[0]
    assert "Traceback" not in result.stderr
    (run_dir,) = run_dirs(tmp_path)
    record = manifest(run_dir)
    assert record["status"] == "failed" and record["error"].startswith("ConfigError: trainer:")
    assert not (run_dir / "metrics.json").exists()


def test_a_monitored_metric_the_model_never_logs_fails_before_the_fit(tmp_path):
    """Lightning would fail after the first epoch with its own traceback; factory names the key first."""
    result = run_script(tmp_path, "train.py", *BASE, "monitor.metric=val/nope")
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: monitor.metric: 'val/nope' is not logged"), errors
    assert "val/loss" in errors[0] and "Traceback" not in result.stderr
    (run_dir,) = run_dirs(tmp_path)
    assert manifest(run_dir)["status"] == "failed" and not (run_dir / "checkpoints").exists()
