"""Hydra sweep syntax to Optuna distributions, and sampled values back to overrides."""
from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from factory.errors import ConfigError
from hydra_plugins.factory_optuna_sweeper._search_space import as_override, split


def test_each_sweep_kind_becomes_its_distribution():
    space, fixed = split(["model.optimizer.lr=tag(log, interval(1e-4, 1e-1))", "model.net.dropout=interval(0, 0.5)",
                          "data.batch_size=choice(256, 512)", "model.net.depth=range(2, 8, 2)",
                          "model.net.hidden_dims=choice([64,32],[128])", "model.net.width=int(interval(8, 64))",
                          "experiment=diagnosis", "trainer.max_epochs=3"])
    assert space["model.optimizer.lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert space["model.net.dropout"] == FloatDistribution(0.0, 0.5)
    assert space["data.batch_size"] == CategoricalDistribution([256, 512])
    assert space["model.net.depth"] == IntDistribution(2, 6, step=2)  # range excludes its stop
    assert space["model.net.hidden_dims"] == CategoricalDistribution(["[64,32]", "[128]"])
    assert space["model.net.width"] == IntDistribution(8, 64)
    assert fixed == {"experiment": "experiment=diagnosis", "trainer.max_epochs": "trainer.max_epochs=3"}


def test_a_later_override_of_a_key_wins():
    space, fixed = split(["model.net.dropout=interval(0, 0.5)", "model.net.dropout=0.2"])
    assert space == {} and fixed == {"model.net.dropout": "model.net.dropout=0.2"}
    space, fixed = split(["model.net.dropout=0.2", "model.net.dropout=choice(0.1, 0.3)"])
    assert list(space) == ["model.net.dropout"] and fixed == {}


def test_a_glob_sweep_is_refused_by_name():
    with pytest.raises(ConfigError, match="^model: .*not a sweep Optuna can search"):
        split(["model=glob(*)"])


@pytest.mark.parametrize("value, text", [(0.001, "0.001"), (3, "3"), (True, "true"), (None, "null"),
                                         ("[64,32]", "[64,32]"), ("adamw", "adamw")])
def test_sampled_values_read_back_as_the_same_override(value, text):
    assert as_override("k", value) == f"k={text}"
