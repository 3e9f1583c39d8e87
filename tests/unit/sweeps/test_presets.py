"""The sweeper presets in conf/ build real Optuna samplers and pruners."""
from __future__ import annotations

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from factory.config import CONFIG_DIR


def hydra_sweeper(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", ["hparams_search=optuna", "experiment=diagnosis", *overrides], return_hydra_config=True)
    return cfg, cfg.hydra.sweeper


@pytest.mark.parametrize("sampler, cls", [("tpe", optuna.samplers.TPESampler), ("random", optuna.samplers.RandomSampler)])
def test_samplers(sampler, cls):
    _, sweeper = hydra_sweeper(f"hydra/sweeper/sampler={sampler}")
    assert isinstance(instantiate(sweeper.sampler), cls)


@pytest.mark.parametrize("pruner, cls", [("median", optuna.pruners.MedianPruner),
                                         ("hyperband", optuna.pruners.HyperbandPruner),
                                         ("threshold", optuna.pruners.ThresholdPruner)])
def test_pruners(pruner, cls):
    overrides = [f"hydra/sweeper/pruner={pruner}"] + (["hydra.sweeper.pruner.upper=1.0"] if pruner == "threshold" else [])
    _, sweeper = hydra_sweeper(*overrides)
    assert isinstance(instantiate(sweeper.pruner), cls)


def test_defaults_and_search_space():
    cfg, sweeper = hydra_sweeper()
    assert sweeper._target_ == "hydra_plugins.factory_optuna_sweeper.sweeper.OptunaSweeper"
    assert sweeper.sampler.seed == cfg.seed and sweeper.pruner._target_ == "optuna.pruners.MedianPruner"
    assert set(cfg.search_space) == {"model.optimizer.lr", "model.net.dropout", "model.net.hidden_dims"}
    _, sweeper = hydra_sweeper("~hydra/sweeper/pruner")
    assert sweeper.pruner is None
