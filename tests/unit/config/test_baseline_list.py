"""``baseline:`` is a list of names; a name alone (old configs, the CLI) and null still work."""
from __future__ import annotations

import pytest

from factory.config import compose, validate
from factory.errors import ConfigError
from factory.training.baselines import names


@pytest.mark.parametrize("override, expected", [
    ("baseline=null", []),
    ("baseline=[]", []),
    ("baseline=logistic_regression", ["logistic_regression"]),
    ("baseline=[logistic_regression,hist_gradient_boosting]", ["logistic_regression", "hist_gradient_boosting"]),
])
def test_each_form_validates_and_reads_as_a_list(override: str, expected: list[str]):
    cfg = compose("train", [override], check=False)
    validate(cfg)
    assert names(cfg.baseline) == expected


def test_the_tabular_presets_ask_for_both_baselines():
    for experiment in ("fraud_detection", "diagnosis"):
        cfg = compose("train", [f"experiment={experiment}"])
        assert names(cfg.baseline) == ["logistic_regression", "hist_gradient_boosting"]


@pytest.mark.parametrize("override, expected", [
    ("baseline=[logistic_regression,xgboost]",
     "baseline[1]: 'xgboost' is not one of: logistic_regression, hist_gradient_boosting"),
    ("baseline=xgboost", "baseline: 'xgboost' is not one of: logistic_regression, hist_gradient_boosting, null"),
])
def test_a_bad_name_is_one_line_naming_baseline_and_the_item(override: str, expected: str):
    with pytest.raises(ConfigError) as info:
        validate(compose("train", [override], check=False))
    assert str(info.value) == expected
