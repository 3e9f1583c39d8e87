"""Tracker choices: validated before anything loads, imported only when selected."""
from __future__ import annotations

import subprocess
import sys

import pytest

from factory import compose
from factory.errors import ConfigError
from tests.conftest import REPO, script_env

TRACKERS = ("mlflow", "tensorboard", "wandb")


@pytest.mark.parametrize("logger", ["tensorboard", "csv"])
def test_log_checkpoint_needs_a_tracker_that_stores_files(logger):
    with pytest.raises(ConfigError, match="tracking.log_checkpoint: only logger=wandb or logger=mlflow"):
        compose("train", [f"logger={logger}", "tracking.log_checkpoint=true"])


@pytest.mark.parametrize("logger", ["wandb", "mlflow"])
def test_log_checkpoint_with_wandb_or_mlflow_composes(logger):
    assert compose("train", [f"logger={logger}", "tracking.log_checkpoint=true"]).tracking.log_checkpoint


def test_mlflow_store_lives_under_outputs(isolated_env):
    cfg = compose("train", ["logger=mlflow"])
    assert cfg.logger.tracking_uri == f"sqlite:///{isolated_env}/outputs/mlflow/mlflow.db"
    assert cfg.logger.artifact_location == f"{isolated_env}/outputs/mlflow/artifacts"


@pytest.mark.parametrize("args", [["--help", "logger=mlflow"], ["--cfg", "job", "logger=tensorboard"]])
def test_help_and_cfg_job_import_no_tracker(tmp_path, args):
    result = subprocess.run([sys.executable, "-X", "importtime", str(REPO / "scripts/train.py"), *args],
                            capture_output=True, text=True, env=script_env(tmp_path), cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert imported & {*TRACKERS, "tensorboardX", "torch"} == set()
