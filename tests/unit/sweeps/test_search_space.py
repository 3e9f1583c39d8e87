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
    from hydra.core.override_parser.overrides_parser import OverridesParser

    override = as_override("k", value)
    assert override == f"k={text}"
    parsed = OverridesParser.create().parse_overrides([override])[0].value()
    assert parsed == ([64, 32] if value == "[64,32]" else value)


@pytest.mark.parametrize("sweep, values", [("range(1, 11, 3)", [1, 4, 7, 10]), ("range(2, 8, 2)", [2, 4, 6]),
                                           ("range(0, 1, 0.25)", [0.0, 0.25, 0.5, 0.75])])
def test_ranges_keep_every_value_python_range_gives(sweep, values):
    space, _ = split([f"k={sweep}"])
    dist = space["k"]
    assert (dist.low, dist.high, dist.step) == (values[0], values[-1], values[1] - values[0])


@pytest.mark.parametrize("sweep", ["range(5, 1)", "range(1, 5, -1)", "interval(1, 0)", "tag(log, interval(0, 0.1))"])
def test_impossible_spaces_name_their_key(sweep):
    with pytest.raises(ConfigError, match=r"^model\.x: "):
        split([f"model.x={sweep}"])
