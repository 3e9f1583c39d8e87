"""Every numeric knob has a declared range, checked before anything loads, naming the full key."""
from __future__ import annotations

import dataclasses
import typing

import pytest

from factory.config import compose, validate
from factory.config.ranges import Range
from factory.config.schemas import PRECISIONS, ROOTS, SCHEMAS
from factory.config.torch_schemas import OptimizerKeysConf
from factory.errors import ConfigError

NUMBERS = (int, float)


def _errors(overrides: list[str], root: str = "train") -> list[str]:
    cfg = compose(root, overrides, check=False)
    with pytest.raises(ConfigError) as info:
        validate(cfg, root=root)
    return str(info.value).splitlines()


def _schemas() -> dict[str, type]:
    """Every schema dataclass, the nested ones (``plan``, ``trial``, ``report``) included."""
    found: dict[str, type] = {}
    todo = [*SCHEMAS.values(), *ROOTS.values(), OptimizerKeysConf]
    while todo:
        schema = todo.pop()
        if schema.__name__ in found:
            continue
        found[schema.__name__] = schema
        for hint in typing.get_type_hints(schema).values():
            todo += [a for a in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(a)]
    return found


def _numeric(hint) -> bool:
    """Whether a value of this type can be a number (bool is not one; Any is checked by name)."""
    if hint in NUMBERS:
        return True
    return any(_numeric(a) for a in typing.get_args(hint))


def test_every_numeric_field_of_every_schema_declares_a_range_or_choices():
    missing = [f"{name}.{f.name}" for name, schema in _schemas().items()
               for f, hint in ((f, typing.get_type_hints(schema)[f.name]) for f in dataclasses.fields(schema))
               if _numeric(hint) and "range" not in f.metadata and "choices" not in f.metadata]
    assert len(_schemas()) > 25
    assert missing == []


@pytest.mark.parametrize("overrides, expected", [
    (["data.batch_size=0"], "data.batch_size: must be >= 1, got 0"),
    (["data.batch_size=-4"], "data.batch_size: must be >= 1, got -4"),
    (["data.num_workers=-1"], "data.num_workers: must be >= 0, got -1"),
    (["data.val_fraction=1.5"], "data.val_fraction: must be in [0, 1), got 1.5"),
    (["data.source.rows=0"], "data.source.rows: must be >= 1, got 0"),
    (["data.source.fraud_rate=0.7"], "data.source.fraud_rate: must be in (0, 0.5), got 0.7"),
    (["model.net.dropout=1.5"], "model.net.dropout: must be in [0, 1), got 1.5"),
    (["model.net.hidden_dims=[8,-3]"], "model.net.hidden_dims[1]: must be >= 1, got -3"),
    (["model.net.embed_dim=0"], "model.net.embed_dim: must be >= 1, got 0"),
    (["model=mlp_wide", "model.net.width=-5"], "model.net.width: must be >= 1, got -5"),
    (["model=cnn_small", "model.net.channels=[0]"], "model.net.channels[0]: must be >= 1, got 0"),
    (["model.pos_weight=0"], "model.pos_weight: must be > 0, got 0"),
    (["model.optimizer.lr=-1"], "model.optimizer.lr: must be > 0, got -1"),
    (["model.optimizer.lr=abc"], "model.optimizer.lr: expected float, got str 'abc'"),
    (["model.optimizer.weight_decay=-0.1"], "model.optimizer.weight_decay: must be >= 0, got -0.1"),
    (["+model.optimizer.betas=[0.9,1.5]"], "model.optimizer.betas[1]: must be in [0, 1), got 1.5"),
    (["model.optimizer._target_=torch.optim.RMSprop", "+model.optimizer.momentum=2"],
     "model.optimizer.momentum: must be in [0, 1), got 2"),
    (["model.scheduler.T_max=0"], "model.scheduler.T_max: must be >= 1, got 0"),
    (["trainer.precision=bogus"], "trainer.precision: 'bogus' is not one of: transformer-engine"),
    (["trainer.precision=1.5"], "trainer.precision: expected int or str, got float 1.5"),
    (["trainer.max_epochs=-3"], "trainer.max_epochs: must be >= 0 or -1 (no limit), got -3"),
    (["trainer.max_steps=-2"], "trainer.max_steps: must be >= 0 or -1 (no limit), got -2"),
    (["trainer.limit_val_batches=1.5"], "trainer.limit_val_batches: must be in [0, 1], got 1.5"),
    (["trainer.limit_test_batches=-1"], "trainer.limit_test_batches: must be >= 0, got -1"),
    (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps: must be >= 1, got 0"),
    (["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches: must be >= 1, got 0"),
    (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val: must be >= 0, got -1"),
    (["trainer.devices=0"], "trainer.devices: must be >= 1 or -1 (all), got 0"),
    (["callbacks.early_stopping.patience=-1"], "callbacks.early_stopping.patience: must be >= 0, got -1"),
    (["callbacks.model_checkpoint.save_top_k=-2"], "callbacks.model_checkpoint.save_top_k: must be >= 0 or -1"),
    (["plan.headroom=0"], "plan.headroom: must be in (0, 1], got 0"),
    (["plan.device_memory_gb=-8"], "plan.device_memory_gb: must be > 0, got -8"),
    (["seed=-1"], "seed: must be in [0, 4294967295], got -1"),
    (["strategy=deepspeed_zero2", "strategy.reduce_bucket_size=0"], "strategy.reduce_bucket_size: must be > 0, got 0"),
    (["data.val_fraction=0"], "data.val_fraction: must be above 0 for training"),
    (["data.test_fraction=0"], "data.test_fraction: 0 leaves no test rows while test=true"),
])
def test_out_of_range_value_names_its_full_key(overrides, expected):
    assert any(line.startswith(expected) for line in _errors(overrides)), _errors(overrides)


@pytest.mark.parametrize("overrides", [
    ["trainer.max_epochs=0"], ["trainer.max_steps=0"], ["trainer.limit_train_batches=0"],
    ["trainer.limit_train_batches=0.0"],
])
def test_a_fit_that_trains_nothing_is_refused_in_one_line(overrides):
    key = overrides[0].split("=")[0]
    assert _errors(overrides) == [f"{key}: 0 trains nothing while train=true "
                                  "(to only evaluate a checkpoint: train=false ckpt_path=...)"]


def test_zero_epochs_pass_when_nothing_is_trained():
    validate(compose("train", ["train=false", "trainer.max_epochs=0", "model.scheduler=null"], check=False))


def test_a_copied_value_is_reported_once_at_its_source():
    """``data.split_seed: ${seed}``: one bad seed is one line, not one per copy."""
    assert _errors(["seed=-1"]) == ["seed: must be in [0, 4294967295], got -1"]
    assert _errors(["trainer.max_epochs=abc"]) == ["trainer.max_epochs: expected int, got str 'abc'"]
    # A copy that breaks its own range (T_max: ${trainer.max_epochs}) says where it comes from.
    assert _errors(["trainer.max_epochs=-1"]) == [
        "model.scheduler.T_max: must be >= 1, got -1 (from trainer.max_epochs)"]


@pytest.mark.parametrize("overrides", [
    ["trainer.max_steps=-1"], ["trainer.max_epochs=-1", "model.scheduler=null"], ["trainer.max_steps=5"],
    ["callbacks.model_checkpoint.save_top_k=-1"], ["trainer.limit_train_batches=0.5"],
    ["trainer.limit_val_batches=3"], ["trainer.precision=16-mixed"], ["trainer.precision=32"],
    ["data.val_fraction=0", "train=false"], ["data.test_fraction=0", "test=false"], ["model.net.dropout=0"], ["seed=0"], ["model.pos_weight=2.5"],
    ["trainer.fast_dev_run=3"], ["strategy=ddp", "trainer.devices=-1"],
])
def test_values_at_the_edges_of_their_ranges_pass(overrides):
    validate(compose("train", overrides, check=False))


def test_precision_choices_are_lightnings():
    from lightning_fabric.connector import _PRECISION_INPUT

    accepted = {value for literal in typing.get_args(_PRECISION_INPUT) for value in typing.get_args(literal)}
    assert set(PRECISIONS) == accepted and len(PRECISIONS) == len(accepted)


def test_range_wording():
    assert Range(ge=1).problem(0) == "must be >= 1, got 0"
    assert Range(gt=0, le=1).problem(1.5) == "must be in (0, 1], got 1.5"
    assert Range(ge=0, special={-1: "no limit"}).problem(-2) == "must be >= 0 or -1 (no limit), got -2"
    assert Range(ge=0, special={-1: "no limit"}).problem(-1) is None
    assert Range(lt=0.5).problem(0.5) == "must be < 0.5, got 0.5"


@pytest.mark.parametrize("key, sweep, expected", [
    ("model.net.dropout", "interval(0.0, 1.5)", "must be in [0, 1), got 1.5 (in interval(0.0, 1.5))"),
    ("model.optimizer.lr", "tag(log, interval(0.0, 0.1))", "must be > 0, got 0.0 (in tag(log, interval(0.0, 0.1)))"),
    ("model.net.hidden_dims", "choice([32], [64,-2])", "must be >= 1, got -2 (in choice([32], [64,-2]))"),
    ("data.batch_size", "range(0, 64, 16)", "must be >= 1, got 0 (in range(0, 64, 16))"),
    ("model.net.norm", "choice(batch, group)", "'group' is not one of: batch, layer, none (in choice(batch, group))"),
    ("data.batch_size", "range(16, 64, 16)", None),
    ("model.net.dropout", "interval(0.0, 0.5)", None),
])
def test_a_search_space_stays_inside_its_keys_ranges(key, sweep, expected):
    """An Optuna sweep would sample outside the range mid-sweep: refuse it before the first trial."""
    from omegaconf import open_dict

    cfg = compose("train", ["experiment=diagnosis"], check=False)
    with open_dict(cfg):
        cfg.search_space[key] = sweep
    if expected is None:
        validate(cfg)
        return
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert str(info.value) == f"search_space.{key}: {expected}"
