"""Shared fixtures: keep every run, wandb file and cache inside the test's tmp dir."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WANDB_SERVICE = "WANDB_SERVICE"  # wandb.env.SERVICE, without importing wandb for every test


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runs land in tmp_path/outputs; wandb writes nothing to the home directory."""
    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path))
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("FACTORY_CACHE_DIR", str(tmp_path / "cache"))  # ZeRO consolidations (factory.rundir.checkpoints)
    monkeypatch.delenv("FACTORY_RUN_ID", raising=False)
    # Governance: the developer's access policy, identity, read log, data and PII keys and OpenLineage
    # configuration (events would go to their backend) stay out of tests.
    for name in ("FACTORY_POLICY", "FACTORY_AUDIT_LOG", "FACTORY_USER", "FACTORY_DATA_KEY", "FACTORY_DATA_KEY_FILE",
                 "FACTORY_PII_KEY", "FACTORY_PII_KEY_FILE", *[k for k in os.environ if k.startswith("OPENLINEAGE")]):
        monkeypatch.delenv(name, raising=False)
    # wandb keeps its service's address here once this process has used it, and child processes
    # would join that service: a child killed by a test (kill -9) then leaves its run id "in use".
    monkeypatch.delenv(WANDB_SERVICE, raising=False)
    return tmp_path


def script_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running scripts/*.py as a subprocess in a test."""
    env = dict(os.environ)
    env["FACTORY_ROOT"] = str(tmp_path)
    env.pop("FACTORY_RUN_ID", None)
    env.pop(WANDB_SERVICE, None)  # a script starts its own wandb service (see isolated_env)
    return env
