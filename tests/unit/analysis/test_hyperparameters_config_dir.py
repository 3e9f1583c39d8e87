"""Runs without ``.hydra/`` are judged against the project's ``train`` config as composed with the
user's config directory ($FACTORY_CONFIG_DIR) of the moment: one gone is a fallback, not an error."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from factory import compose
from factory.analysis.hyperparameters import differing_hyperparameters, interpolated_keys
from factory.config.compose import CONFIG_DIR_ENV

TWO_RUNS = (["experiment=diagnosis", "trainer.max_epochs=2"], ["experiment=diagnosis", "trainer.max_epochs=3"])


def _resolved_pair():
    """Two runs' config.yaml (resolved: T_max holds the epochs), and no .hydra/ config."""
    return {label: OmegaConf.create(OmegaConf.to_container(compose("train", overrides), resolve=True))
            for label, overrides in zip("ab", TWO_RUNS)}


def test_a_config_dir_that_is_gone_leaves_no_key_derived_and_every_differing_one_counted(tmp_path: Path,
                                                                                          monkeypatch):
    configs = _resolved_pair()  # composed before the directory goes, as the runs were
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "gone"))
    assert interpolated_keys(None) == frozenset()  # compose's ConfigError, not raised
    # the epochs and T_max (an interpolation of them, not known as one now): both count
    frame = differing_hyperparameters(configs)
    assert set(frame.columns) == {"trainer.max_epochs", "model.scheduler.T_max"}


def test_the_derived_keys_follow_the_config_dir_of_the_moment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "gone"))
    assert interpolated_keys(None) == frozenset()
    (tmp_path / "gone").mkdir()  # the same setting, now a directory: composed again, not the cached fallback
    assert "model.scheduler.T_max" in interpolated_keys(None)
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "other-gone"))
    assert interpolated_keys(None) == frozenset()
    monkeypatch.delenv(CONFIG_DIR_ENV)
    assert "model.scheduler.T_max" in interpolated_keys(None)
    assert differing_hyperparameters(_resolved_pair()).columns.tolist() == ["trainer.max_epochs"]
