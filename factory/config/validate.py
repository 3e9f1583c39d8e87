"""Check a composed config against the schemas, collecting every error at once.

Each error names the full key (``model.net.hiden_dims: unknown key (did you mean
hidden_dims?)``). Only omegaconf and the schemas are imported: a config error must
answer before torch loads.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any, Union

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from factory.config.schemas import ROOTS, SCHEMAS
from factory.errors import ConfigError

# Keys Hydra's instantiate reads itself.
INSTANTIATE_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
NoneType = type(None)


def validate(cfg: DictConfig, root: str = "train") -> None:
    """Raise ``ConfigError`` listing every schema violation in ``cfg``, one per line.

    Args:
        cfg: a composed config (the ``hydra`` node, if present, is ignored).
        root: which top-level schema applies: ``train`` or ``evaluate``.

    Raises:
        ConfigError: unknown keys, wrong types, missing required values, values outside
            their choices, unknown ``factory.*`` targets, or inconsistent settings.
    """
    errors: list[str] = []
    _check_node(cfg, ROOTS[root], "", errors, skip={"hydra"})
    if not errors:
        errors += _check_consistency(cfg)
    if errors:
        raise ConfigError("\n".join(errors))


def _check_node(node: DictConfig, schema: type, path: str, errors: list[str],
                skip: set[str] = frozenset()) -> None:
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    for key in node.keys():
        key = str(key)
        if key in fields or key in INSTANTIATE_KEYS or key in skip:
            continue
        close = difflib.get_close_matches(key, fields, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        errors.append(f"{_join(path, key)}: unknown key{hint}")
    for name, f in fields.items():
        full = _join(path, name)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        # A "???" value reads as absent to `in`, so both cases meet here.
        if name not in node or OmegaConf.is_missing(node, name):
            if required or name in node.keys():
                errors.append(f"{full}: missing required value (set {full}=...)")
            continue
        try:
            value = node[name]
        except OmegaConfBaseException as e:
            errors.append(f"{full}: {_first_line(e)}")
            continue
        _check_value(value, hints[name], full, errors)
        allowed = f.metadata.get("choices")
        if allowed and not isinstance(value, (DictConfig, ListConfig)) and value not in allowed:
            shown = ", ".join("null" if a is None else str(a) for a in allowed)
            errors.append(f"{full}: {value!r} is not one of: {shown}")


def _check_value(value: Any, hint: Any, path: str, errors: list[str]) -> None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        if isinstance(value, DictConfig):
            _check_component(value, path, errors)
        elif isinstance(value, ListConfig):
            for i, item in enumerate(value):
                _check_value(item, Any, f"{path}[{i}]", errors)
        return
    if origin is Union:
        if value is None and NoneType in args:
            return
        options = [a for a in args if a is not NoneType]
        trials = []
        for option in options:
            trial: list[str] = []
            _check_value(value, option, path, trial)
            if not trial:
                return
            trials.append(trial)
        errors.append(trials[0][0] if len(options) == 1 else
                      f"{path}: expected {_type_name(hint)}, got {_describe(value)}")
        return
    if value is None:
        errors.append(f"{path}: expected {_type_name(hint)}, got null")
    elif origin in (list, typing.List):
        if not isinstance(value, ListConfig):
            errors.append(f"{path}: expected a list, got {_describe(value)}")
            return
        for i, item in enumerate(value):
            _check_value(item, args[0] if args else Any, f"{path}[{i}]", errors)
    elif origin in (dict, typing.Dict):
        if not isinstance(value, DictConfig):
            errors.append(f"{path}: expected a mapping, got {_describe(value)}")
            return
        for key in value.keys():
            _check_value(value[key], args[1] if args else Any, _join(path, str(key)), errors)
    elif dataclasses.is_dataclass(hint):
        if not isinstance(value, DictConfig):
            errors.append(f"{path}: expected a mapping, got {_describe(value)}")
            return
        _check_node(value, hint, path, errors)
    elif not _is_instance(value, hint):
        errors.append(f"{path}: expected {_type_name(hint)}, got {_describe(value)}")


def _check_component(node: DictConfig, path: str, errors: list[str]) -> None:
    """Check a node built by ``instantiate`` against the schema of its ``_target_``."""
    target = node.get("_target_")
    if target is None:
        return
    schema = SCHEMAS.get(target)
    if schema is not None:
        _check_node(node, schema, path, errors)
    elif target.startswith("factory."):
        known = [t for t in SCHEMAS if t.startswith("factory.")]
        close = difflib.get_close_matches(target, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        errors.append(f"{path}._target_: unknown factory component {target!r}{hint}")
    # Other targets (torch optimizers, schedulers) are checked when they are built.


def _check_consistency(cfg: DictConfig) -> list[str]:
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
    plan = cfg.get("plan")
    if isinstance(plan, DictConfig):
        if not 0 < plan.get("headroom", 0.9) <= 1:
            errors.append(f"plan.headroom: must be in (0, 1], got {plan.headroom}")
        if plan.get("device_memory_gb") is not None and plan.device_memory_gb <= 0:
            errors.append(f"plan.device_memory_gb: must be positive, got {plan.device_memory_gb}")
    tracking = cfg.get("tracking")
    if isinstance(tracking, DictConfig) and tracking.get("log_checkpoint"):
        target = str((cfg.get("logger") or {}).get("_target_", ""))
        if not target.endswith((".WandbLogger", ".MLFlowLogger")):
            errors.append("tracking.log_checkpoint: only logger=wandb or logger=mlflow store a checkpoint "
                          f"(logger is {target.rsplit('.', 1)[-1] or 'null'})")
    data = cfg.get("data")
    if isinstance(data, DictConfig) and "val_fraction" in data and "test_fraction" in data:
        val, test = data.val_fraction, data.test_fraction
        for key, value in (("val_fraction", val), ("test_fraction", test)):
            if not 0 <= value < 1:
                errors.append(f"data.{key}: must be in [0, 1), got {value}")
        if val + test >= 1:
            errors.append(f"data.val_fraction + data.test_fraction: must be below 1, got {val + test}")
    return errors


def _is_instance(value: Any, hint: Any) -> bool:
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Union:
        names = [_type_name(a) for a in typing.get_args(hint) if a is not NoneType]
        optional = NoneType in typing.get_args(hint)
        return " or ".join(names) + (" or null" if optional else "")
    return getattr(hint, "__name__", str(hint))


def _describe(value: Any) -> str:
    if isinstance(value, DictConfig):
        return "a mapping"
    if isinstance(value, ListConfig):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
