"""A single key's range or choices is declared once, on its schema field, and worded once.

Config validation checks a config's values against the declaration; a component built in
Python (no config) checks its arguments against the same one (``check_argument``).
"""
from __future__ import annotations

import dataclasses

import pytest

from factory.config import compose, validate
from factory.config.schemas import TabularMLPConf
from factory.data.sources import FraudSource, SklearnSource
from factory.data.split import check_fractions
from factory.errors import ConfigError, DataError


def _config_error(*overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        validate(compose("train", list(overrides), check=False))
    return str(info.value)


@pytest.mark.parametrize("overrides, build", [
    (["data.val_fraction=1.5"], lambda: check_fractions(1.5, 0.1)),
    (["data.val_fraction=0.15", "data.test_fraction=0.85"], lambda: check_fractions(0.15, 0.85)),
    (["data.source.fraud_rate=0.7"], lambda: FraudSource(fraud_rate=0.7)),
    (["data.source.rows=0"], lambda: FraudSource(rows=0)),
])
def test_python_arguments_get_the_config_message(overrides, build):
    with pytest.raises((ConfigError, DataError)) as info:
        build()
    assert str(info.value) == _config_error(*overrides)


def test_a_bad_dataset_or_norm_names_its_key_and_choices():
    with pytest.raises(DataError) as info:
        SklearnSource("iris")
    assert str(info.value) == _config_error("data=breast_cancer", "data.source.dataset=iris")
    assert _config_error("model.net.norm=group") == "model.net.norm: 'group' is not one of: batch, layer, none"


def test_every_norm_choice_has_a_layer():
    from factory.models.tabular_mlp import NORMS

    choices = next(f for f in dataclasses.fields(TabularMLPConf) if f.name == "norm").metadata["choices"]
    assert set(NORMS) == set(choices)
