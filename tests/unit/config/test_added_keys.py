"""``+key=value`` adds a key where its component takes it, and says why in one line where not."""
from __future__ import annotations

import inspect

import pytest
from hydra.utils import get_object

from factory.config import compose
from factory.config.keys import EXTRA_ARGUMENTS, FILLED_BY_FACTORY
from factory.config.schemas import SCHEMAS
from factory.errors import ConfigError


@pytest.mark.parametrize("target", sorted(SCHEMAS))
def test_extra_arguments_are_the_rest_of_the_signature(target: str):
    """Schema fields + EXTRA_ARGUMENTS + FILLED_BY_FACTORY = the target's named parameters."""
    parameters = inspect.signature(get_object(target)).parameters
    named = {n for n, p in parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)} - {"self"}
    fields = set(SCHEMAS[target].__dataclass_fields__)
    extra, filled = set(EXTRA_ARGUMENTS.get(target, ())), set(FILLED_BY_FACTORY.get(target, {}))
    assert extra <= named and filled <= named, f"{target}: not parameters: {(extra | filled) - named}"
    assert not (extra & fields or filled & fields or extra & filled)
    assert named - fields - filled == extra, f"{target}: EXTRA_ARGUMENTS out of date"


@pytest.mark.parametrize("overrides, key, value", [
    (["+trainer.benchmark=false"], "trainer.benchmark", False),
    (["+trainer.num_sanity_val_steps=0"], "trainer.num_sanity_val_steps", 0),
    (["+model.optimizer.amsgrad=true"], "model.optimizer.amsgrad", True),
    (["+callbacks.model_checkpoint.save_weights_only=true"], "callbacks.model_checkpoint.save_weights_only", True),
    (["logger=csv", "+logger.flush_logs_every_n_steps=10"], "logger.flush_logs_every_n_steps", 10),
    (["model.optimizer._target_=torch.optim.RMSprop", "+model.optimizer.centered=true"],
     "model.optimizer.centered", True),  # a torch optimizer without a schema: its shared keys are checked
])
def test_a_key_the_target_takes_can_be_added(overrides, key, value):
    from omegaconf import OmegaConf

    for name in ("train", "evaluate") if key.startswith("trainer.") else ("train",):
        extra = ["ckpt_path=x.ckpt"] if name == "evaluate" else []
        assert OmegaConf.select(compose(name, [*overrides, *extra]), key) == value


@pytest.mark.parametrize("overrides, expected", [
    (["+new_key=1"], "new_key: unknown key; nothing reads it"),
    (["+seeed=3"], "seeed: unknown key (did you mean seed?); nothing reads it"),
    (["+plan.margin=1"], "plan.margin: unknown key; nothing reads it"),
    (["+trainer.benchmarks=true"],
     "trainer.benchmarks: unknown key (did you mean benchmark?); not an argument of pytorch_lightning.Trainer"),
    (["+model.net.hiden_dims=[1]"],
     "model.net.hiden_dims: unknown key (did you mean hidden_dims?); not an argument of factory.models.TabularMLP"),
    (["+model.optimizer.lrr=1"], "model.optimizer.lrr: unknown key (did you mean lr?); not an argument of "
                                 "torch.optim.AdamW"),
    (["+trainer.strategy=ddp"], "trainer.strategy: set by factory from strategy=<option>, not by this key"),
    (["+model.net.spec=1"], "model.net.spec: set by factory from the data, not by this key"),
    (["+trainer.benchmark=maybe"], "trainer.benchmark: expected bool, got str 'maybe'"),
    (["+trainer.num_sanity_val_steps=-5"], "trainer.num_sanity_val_steps: must be >= 0 or -1 (all), got -5"),
    (["+trainer.profiler=simple", "+trainer.max_time=00:00:05:00"], None),  # taken as given: Lightning checks them
])
def test_an_added_key_nothing_takes_is_one_line(overrides, expected):
    if expected is None:
        compose("train", overrides)
        return
    with pytest.raises(ConfigError) as info:
        compose("train", overrides)
    assert str(info.value) == expected


@pytest.mark.parametrize("key, value", [
    ("trainer.benchmark", "false"), ("model.optimizer.amsgrad", "true"), ("trainer.max_time", "00:00:05:00"),
])
def test_the_hint_to_add_a_key_is_true(key, value):
    """``key=value`` on a key the config lacks says ``+key``, and following it works."""
    with pytest.raises(ConfigError) as info:
        compose("train", [f"{key}={value}"])
    assert str(info.value) == f"{key}: not in the config (to add it: +{key}=...)"
    compose("train", [f"+{key}={value}"])


@pytest.mark.parametrize("override, expected", [
    ("model.net.hiden_dims=[64]", "model.net.hiden_dims: unknown key (did you mean hidden_dims?); "
                                  "not an argument of factory.models.TabularMLP"),
    ("new_key=1", "new_key: unknown key; nothing reads it"),
    ("trainer.strategy=ddp", "trainer.strategy: set by factory from strategy=<option>, not by this key"),
])
def test_no_plus_hint_where_adding_would_fail(override, expected):
    with pytest.raises(ConfigError) as info:
        compose("train", [override])
    assert str(info.value) == expected


def test_evaluate_hints_follow_its_own_schema():
    """``plan`` is a train key: in evaluate nothing reads it, so no ``+plan...`` hint."""
    with pytest.raises(ConfigError, match=r"^plan: unknown key.*; nothing reads it$"):
        compose("evaluate", ["ckpt_path=x.ckpt", "+plan.check=false"])
