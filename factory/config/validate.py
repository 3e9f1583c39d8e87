"""Check a composed config against the schemas, collecting every error at once.

Each error names the full key (``model.net.hiden_dims: unknown key (did you mean
hidden_dims?)``). Only omegaconf and the schemas are imported: a config error must
answer before torch loads.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from typing import Any, Union

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from factory.config import callables
from factory.config.keys import join as _join
from factory.config.keys import unknown_key
from factory.config.ranges import not_one_of, range_of
from factory.config.resolvers import factory_error
from factory.config.rules import check_consistency, check_search_space, nothing_to_train
from factory.config.schemas import ROOTS, SCHEMAS
from factory.config.torch_schemas import OptimizerKeysConf
from factory.errors import ConfigError

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
    if cfg.get("train") is True and isinstance(cfg.get("trainer"), DictConfig):
        errors += nothing_to_train(cfg.trainer)
    errors = _without_echoes(errors)
    if not errors:
        errors += check_consistency(cfg) + check_search_space(cfg, root)
    if errors:
        raise ConfigError("\n".join(errors))


def validate_key(cfg: DictConfig, key: str, root: str) -> None:
    """Check only ``cfg[key]`` against ``root``'s schema: a value filled in after ``validate(cfg)``
    passed (``evaluate`` adopting a checkpoint's data), so the rest is not checked twice.

    Raises:
        ConfigError: as ``validate``, for that key.
    """
    errors: list[str] = []
    _check_value(cfg[key], typing.get_type_hints(ROOTS[root])[key], key, errors)
    if errors:
        raise ConfigError("\n".join(errors))


def _check_node(node: DictConfig, schema: type, path: str, errors: list[str],
                skip: set[str] = frozenset(), target: str | None = None, partial: bool = False) -> None:
    """Check ``node`` against ``schema``; ``partial``: only the keys present (no unknown or missing)."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    for key in node.keys():
        problem = None if partial or str(key) in skip else unknown_key(path, str(key), schema, target)
        if problem:
            errors.append(problem)
    for name, f in fields.items():
        full = _join(path, name)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        # A "???" value reads as absent to `in`, so both cases meet here.
        if name not in node or OmegaConf.is_missing(node, name):
            if not partial and (required or name in node.keys()):
                errors.append(f"{full}: missing required value (set {full}=...)")
            continue
        try:
            value = node[name]
        except OmegaConfBaseException as e:
            if factory_error(e):  # a resolver's own error (FACTORY_RUN_ID): one line, not one per key using it
                raise factory_error(e) from None
            errors.append(f"{full}: {_first_line(e)}")
            continue
        before, source = len(errors), _source(node, name)
        _check_value(value, hints[name], full, errors)
        if len(errors) > before:  # a wrong type: its range means nothing
            if source:
                errors[before:] = [f"{line} {FROM}{source})" for line in errors[before:]]
            continue
        allowed = f.metadata.get("choices")
        if allowed and isinstance(value, ListConfig):  # a list of names (baseline): each one is a choice
            names = tuple(a for a in allowed if a is not None)
            errors += [f"{full}[{i}]: {not_one_of(item, names)}" for i, item in enumerate(value) if item not in names]
        elif allowed and not isinstance(value, DictConfig) and value not in allowed:
            errors.append(f"{full}: {not_one_of(value, allowed)}")
        if "range" in f.metadata:
            _check_range(value, f.metadata["range"], full, errors, _source(node, name))
        if f.metadata.get("callables"):  # names of functions to call later: each must exist
            errors += [f"{full}[{i}]: {problem}" for i, item in enumerate(value)
                       if (problem := callables.problem(str(item)))]


def _check_range(value: Any, rng: Any, path: str, errors: list[str], source: str | None = None) -> None:
    """``path: must be >= 1, got 0`` for a number (or each number of a list) outside ``rng``.

    ``source``: the key ``path`` interpolates (``${trainer.max_epochs}``), named after the value.
    """
    items = enumerate(value) if isinstance(value, ListConfig) else [(None, value)]
    for i, item in items:
        bounds = range_of(rng, item)
        problem = bounds.problem(item) if bounds is not None else None
        if problem:
            errors.append(f"{path if i is None else f'{path}[{i}]'}: {problem}"
                          + (f" {FROM}{source})" if source else ""))


FROM = "(from "
_REFERENCE = re.compile(r"^\$\{([\w.]+)\}$")


def _source(node: DictConfig, key: str) -> str | None:
    """The key that ``node[key]`` is a plain reference to (``${seed}`` -> ``seed``), if any."""
    if not OmegaConf.is_interpolation(node, key):
        return None
    match = _REFERENCE.match(str(node._get_node(key)._value()))
    return match.group(1) if match else None


def _without_echoes(errors: list[str]) -> list[str]:
    """Drop the errors of values copied from a key that has its own error (one cause, one line)."""
    keys = {line.split(":", 1)[0] for line in errors}
    return [line for line in errors
            if not (line.endswith(")") and FROM in line and line.rsplit(FROM, 1)[1][:-1] in keys)]


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
        _check_node(node, schema, path, errors, target=target)
    elif target.startswith("factory."):
        known = [t for t in SCHEMAS if t.startswith("factory.")]
        close = difflib.get_close_matches(target, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        errors.append(f"{path}._target_: unknown factory component {target!r}{hint}")
    elif target.startswith("torch.optim.") and ".lr_scheduler." not in target:
        _check_node(node, OptimizerKeysConf, path, errors, partial=True)  # the keys optimizers share
    # Other targets are checked when they are built.


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

