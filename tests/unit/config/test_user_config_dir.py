"""A user's own config directory: ``factory.compose(config_dir=...)``, ``$FACTORY_CONFIG_DIR``,
the CLI's ``--config-dir`` and reports search it after conf/."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from factory.config.compose import CONFIG_DIR_ENV, compose
from factory.errors import ConfigError
from factory.reports.spec import available, compose_report, spec_from_file
from tests.conftest import REPO, script_env


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """experiment/my_exp.yaml (digits under another task name) and report/my_report.yaml."""
    root = tmp_path / "my_configs"
    (root / "experiment").mkdir(parents=True)
    (root / "experiment" / "my_exp.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /data: digits\n  - override /model: cnn_small\n"
        "task_name: my_exp\n")
    (root / "report").mkdir()
    (root / "report" / "my_report.yaml").write_text(
        "name: my_report\nnotebook: notebooks/compare_runs.ipynb\nparameters: {experiment: my_exp}\n")
    return root


def test_compose_searches_the_directory_given(user_dir: Path, monkeypatch):
    monkeypatch.delenv(CONFIG_DIR_ENV, raising=False)
    cfg = compose("train", ["experiment=my_exp"], config_dir=user_dir)
    assert cfg.task_name == "my_exp" and cfg.data.source.dataset == "digits"
    with pytest.raises(ConfigError, match="experiment/my_exp: no such config"):
        compose("train", ["experiment=my_exp"])  # not searched unless asked


def test_compose_searches_the_environment_setting(user_dir: Path, monkeypatch):
    monkeypatch.setenv(CONFIG_DIR_ENV, str(user_dir))
    assert compose("train", "experiment=my_exp").task_name == "my_exp"
    assert compose("train", ["experiment=digits"]).task_name == "digits"  # conf/ still there


def test_a_directory_that_does_not_exist_is_one_line(tmp_path: Path, monkeypatch):
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as info:
        compose("train", [], config_dir=missing)
    assert str(info.value) == f"config_dir: {missing}: no such directory"
    monkeypatch.setenv(CONFIG_DIR_ENV, str(missing))
    with pytest.raises(ConfigError, match=f"^{CONFIG_DIR_ENV}: {missing}: no such directory$"):
        compose("train", [])


def test_reports_in_the_user_directory_compose(user_dir: Path, monkeypatch):
    monkeypatch.delenv(CONFIG_DIR_ENV, raising=False)
    cfg = compose_report("my_report", '["report.parameters.experiment=digits"]', config_dir=user_dir)
    assert cfg.report.name == "my_report" and cfg.report.parameters.experiment == "digits"
    assert "my_report" not in available()
    monkeypatch.setenv(CONFIG_DIR_ENV, str(user_dir))
    assert "my_report" in available() and "run_report" in available()
    assert spec_from_file("my_report").parameters["experiment"] == "my_exp"
    assert compose_report("my_report", "report.parameters.experiment=x").report.parameters.experiment == "x"


def _cli(tmp_path: Path, *args: str, config_dir: str | None = None) -> subprocess.CompletedProcess:
    env = script_env(tmp_path)
    env.pop(CONFIG_DIR_ENV, None)
    if config_dir is not None:
        env[CONFIG_DIR_ENV] = config_dir
    return subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "--cfg", "job", *args],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def test_the_cli_reads_the_setting_and_refuses_a_missing_directory(user_dir: Path, tmp_path: Path):
    done = _cli(tmp_path, "experiment=my_exp", config_dir=str(user_dir))
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["task_name"] == "my_exp"
    done = _cli(tmp_path, "experiment=my_exp", config_dir=str(tmp_path / "nope"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {CONFIG_DIR_ENV}: {tmp_path / 'nope'}: no such directory"
