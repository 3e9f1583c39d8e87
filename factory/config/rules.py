"""Rules that span several keys or values: checked once every key has passed its schema."""
from __future__ import annotations

import dataclasses

from omegaconf import DictConfig, OmegaConf

from factory.config.keys import schema_at
from factory.config.ranges import not_one_of, range_of
from factory.config.schemas import TRACKING_HOOK


def check_consistency(cfg: DictConfig) -> list[str]:
    """Rules that span several keys."""
    errors = []
    strategy = cfg.get("strategy")
    trainer = cfg.get("trainer")
    if strategy is not None and trainer is not None:
        single = strategy.get("_target_") == "factory.distributed.single_device"
        devices = trainer.get("devices")
        if single and devices not in (1, "1"):
            errors.append(f"trainer.devices: strategy=single runs on one device, got {devices} "
                          "(use strategy=ddp for several)")
    for name, node in (cfg.get("callbacks") or {}).items():
        if isinstance(node, DictConfig) and "_target_" not in node:
            errors.append(f"callbacks.{name}: no _target_ (the selected callbacks group has no {name}; "
                          f"remove the override or choose a callbacks group that has it)")
    tracking = cfg.get("tracking")
    if isinstance(tracking, DictConfig) and tracking.get("log_checkpoint"):
        target = str((cfg.get("logger") or {}).get("_target_", ""))
        if not target.endswith((".WandbLogger", ".MLFlowLogger")):
            errors.append("tracking.log_checkpoint: only logger=wandb or logger=mlflow store a checkpoint "
                          f"(logger is {target.rsplit('.', 1)[-1] or 'null'})")
    errors += _tracker_left_open(cfg)
    data = cfg.get("data")
    if isinstance(data, DictConfig) and "val_fraction" in data and "test_fraction" in data:
        val, test = data.val_fraction, data.test_fraction  # each in [0, 1): the schema checked
        too_much = split_sum_problem(val, test)
        errors += [too_much] if too_much else []
        # Only a training config has `train`/`test`: fit monitors val metrics, and test reads the test split.
        if cfg.get("train") is True and val == 0:
            errors.append("data.val_fraction: must be above 0 for training (it monitors validation "
                          "metrics), got 0")
        if cfg.get("test") is True and test == 0 and not data.get("cv_folds"):  # folds: each is a test split
            errors.append("data.test_fraction: 0 leaves no test rows while test=true; "
                          "set it above 0, or test=false")
    errors += _cross_validation_problems(cfg)
    return errors


def _cross_validation_problems(cfg: DictConfig) -> list[str]:
    """What a training config cannot combine with ``data.cv_folds`` (its folds train one after
    another in this process, each from scratch)."""
    data = cfg.get("data")
    if not isinstance(data, DictConfig) or not data.get("cv_folds") or "train" not in cfg:
        return []  # not cross-validated, or not a training config (evaluate adopts a cv run's data)
    key = f"data.cv_folds={data.cv_folds}"
    strategy = str((cfg.get("strategy") or {}).get("_target_", ""))
    problems = [
        (strategy != "factory.distributed.single_device",
         f"strategy={strategy.rsplit('.', 1)[-1]} launches several processes (use strategy=single)"),
        (cfg.get("resume") == "auto", "resume=auto cannot continue a cross-validated run (leave resume out)"),
        (cfg.get("ckpt_path") is not None, "ckpt_path= would continue one fit; each fold trains from scratch"),
        (cfg.get("train") is not True, "train=false: cross-validation trains a model per fold"),
    ]
    return [f"{key}: {why}" for bad, why in problems if bad]


def split_sum_problem(val_fraction: float, test_fraction: float) -> str | None:
    """Why val and test leave no train split (their sum is 1 or more), or ``None``.

    Checked here for a config, and by ``factory.data.split`` for a split asked for in Python.
    """
    total = val_fraction + test_fraction
    if total < 1:
        return None
    return f"data.val_fraction + data.test_fraction: must be below 1 (the rest is the train split), got {total:g}"


def check_search_space(cfg: DictConfig, root: str) -> list[str]:
    """A sweep's values (``search_space``) lie in their key's range: interval ends, range ends, choices."""
    space = cfg.get("search_space")
    if not isinstance(space, DictConfig) or not space:
        return []
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep, RangeSweep
    from hydra.errors import HydraException

    errors = []
    for key, sweep in space.items():
        path, _, name = str(key).rpartition(".")
        found = schema_at(root, path, OmegaConf.select(cfg, path) if path else cfg)
        field = {f.name: f for f in dataclasses.fields(found[0])}.get(name) if found and found[0] else None
        if field is None or not {"range", "choices"} & set(field.metadata):
            continue
        try:
            override = OverridesParser.create().parse_override(f"{key}={sweep}")
        except HydraException:
            continue  # not sweep syntax: the sweeper names it
        value = override.value()
        if isinstance(value, IntervalSweep):
            values = [value.start, value.end]
        elif isinstance(value, RangeSweep):
            values = [value.start, value.stop - (value.step or 1)]
        else:
            values = list(override.sweep_iterator()) if override.is_choice_sweep() else []
        allowed = field.metadata.get("choices")
        problems = [not_one_of(v, allowed) for v in values if allowed and v not in allowed]
        numbers = [v for item in values for v in (item if isinstance(item, list) else [item])]
        problems += [bounds.problem(v) for v in numbers if (bounds := range_of(field.metadata.get("range"), v))]
        if any(problems):
            errors.append(f"search_space.{key}: {next(p for p in problems if p)} (in {sweep})")
    return errors


def nothing_to_train(trainer: DictConfig) -> list[str]:
    """A fit that would make no optimizer step: refused while ``train=true``."""
    for key in ("max_epochs", "max_steps", "limit_train_batches"):
        if trainer.get(key) == 0 and not isinstance(trainer.get(key), bool):
            return [f"trainer.{key}: 0 trains nothing while train=true "
                    "(to only evaluate a checkpoint: train=false ckpt_path=...)"]
    return []


def _tracker_left_open(cfg: DictConfig) -> list[str]:
    """wandb and MLflow runs are closed by the tracking hook: without it the next run in this
    process (a notebook, a sweep) would log into the same tracker run."""
    hooks = cfg.get("after_run")
    target = str((cfg.get("logger") or {}).get("_target_", ""))
    if hooks is None or TRACKING_HOOK in hooks or not target.endswith((".WandbLogger", ".MLFlowLogger")):
        return []
    logger = target.rsplit(".", 1)[-1].removesuffix("Logger").lower()  # its conf/logger option
    return [f"after_run: logger={logger} needs {TRACKING_HOOK} (it publishes the run and "
            "closes the tracker's run); keep it in the list, or drop the tracker (~logger or logger=csv)"]
