"""Each kind of config error is reported with the full key, all at once."""
from __future__ import annotations

import pytest

from factory.config import compose, validate
from factory.errors import ConfigError


def _errors(overrides: list[str], root: str = "train") -> list[str]:
    cfg = compose(root, overrides, check=False)
    with pytest.raises(ConfigError) as info:
        validate(cfg, root=root)
    return str(info.value).splitlines()


@pytest.mark.parametrize("overrides, expected", [
    (["+model.net.hiden_dims=[1]"], "model.net.hiden_dims: unknown key (did you mean hidden_dims?)"),
    (["+seeed=3"], "seeed: unknown key (did you mean seed?)"),
    (["trainer.max_epochs=ten"], "trainer.max_epochs: expected int, got str 'ten'"),
    (["data.val_fraction=high"], "data.val_fraction: expected float, got str 'high'"),
    (["model.net.hidden_dims=[8,wide]"], "model.net.hidden_dims[1]: expected int, got str 'wide'"),
    (["model.net.norm=group"], "model.net.norm: 'group' is not one of: batch, layer, none"),
    (["monitor.mode=up"], "monitor.mode: 'up' is not one of: min, max"),
    (["data=files", "data.source.target=y"], "data.source.path: missing required value (set data.source.path=...)"),
    (["trainer.devices=2"], "trainer.devices: strategy=single runs on one device, got 2 (use strategy=ddp for several)"),
    (["data.test_fraction=1.5"], "data.test_fraction: must be in [0, 1), got 1.5"),
    (["experiment=diagnosis", "callbacks=none"], "callbacks.early_stopping: no _target_"),
    (["plan.headroom=1.5"], "plan.headroom: must be in (0, 1], got 1.5"),
    (["model.net._target_=factory.models.TabularMLPP"],
     "model.net._target_: unknown factory component 'factory.models.TabularMLPP' (did you mean factory.models.TabularMLP?)"),
])
def test_error_names_full_key(overrides, expected):
    assert any(line.startswith(expected) for line in _errors(overrides))


def test_every_error_is_reported_at_once():
    errors = _errors(["+model.net.hiden=1", "trainer.max_epochs=x", "data.batch_size=big"])
    assert len(errors) == 3
    assert all(": " in line for line in errors)


def test_evaluate_requires_checkpoint():
    assert "ckpt_path: missing required value (set ckpt_path=...)" in _errors([], root="evaluate")


def test_valid_config_passes():
    validate(compose("train", ["experiment=fraud_detection"], check=False))


def test_a_config_group_set_to_null_says_how_to_drop_it():
    with pytest.raises(ConfigError, match=r"^report=null: .*\(.*compare_runs, .*run_report, sweep_report\); "
                                          r"to drop it, write ~report$"):
        compose("train", ["experiment=diagnosis", "report=null"])
