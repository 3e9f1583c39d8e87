"""One copy of each default: a schema restates only what the code or the YAML already says.

Validation never fills a schema default in (``factory.config.validate``): a component's
default is its signature's, a top-level key's is the YAML's. These tests hold the schemas
to both, so a default changed in one place cannot silently disagree with another.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest
import yaml
from hydra.utils import get_object
from omegaconf import MISSING

from factory.config import CONFIG_DIR
from factory.config.schemas import ROOTS, SCHEMAS, PlanConf

REQUIRED = object()  # no default: the schema's MISSING, the signature's empty default

# Fields whose schema accepts less than the target, so the target's default is not a value factory takes.
NARROWED = {
    ("pytorch_lightning.Trainer", "precision"):
        "null (Lightning's default, meaning 32-true) is not a choice: factory.distributed.precision reads a value",
}

# Top-level keys whose YAML value is deliberately not the schema's (what a config without the key gets).
YAML_OVER_SCHEMA: dict[str, str] = {}  # key -> why its YAML value differs from the schema's default


def _schema_default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return REQUIRED if f.default is dataclasses.MISSING or f.default == MISSING else f.default


def _same(a: Any, b: Any) -> bool:
    """Equal as config values: a list is a tuple, 0 is 0.0, but False is not 0."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


@pytest.mark.parametrize("target", sorted(SCHEMAS))
def test_schema_defaults_are_the_signatures(target: str):
    parameters = inspect.signature(get_object(target)).parameters
    drifted = []
    for f in dataclasses.fields(SCHEMAS[target]):
        p = parameters.get(f.name)
        if p is None or (target, f.name) in NARROWED:  # None: taken through **kwargs, no default to hold
            continue
        theirs = REQUIRED if p.default is p.empty else p.default
        ours = _schema_default(f)
        if not (ours is theirs is REQUIRED or ours is not REQUIRED and theirs is not REQUIRED and _same(ours, theirs)):
            drifted.append(f"{f.name}: schema {ours!r}, signature {theirs!r}")
    assert drifted == [], f"{target}: " + "; ".join(drifted)


@pytest.mark.parametrize("target, name", sorted(NARROWED))
def test_narrowed_fields_still_differ(target: str, name: str):
    """An entry of NARROWED is removed once the schema takes the signature's default."""
    field = next(f for f in dataclasses.fields(SCHEMAS[target]) if f.name == name)
    default = inspect.signature(get_object(target)).parameters[name].default
    assert default not in field.metadata.get("choices", (default,))


def _yaml_keys(node: dict, schema: type, path: str = "") -> list[tuple[str, Any, Any]]:
    """(key, yaml value, schema default) for each plain value a top-level YAML sets and its schema defaults."""
    found = []
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key, value in node.items():
        f = fields.get(key)
        if f is None:
            continue
        default = _schema_default(f)
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            found += _yaml_keys(value, type(default), f"{path}{key}.")
        elif default is not REQUIRED and not (isinstance(value, str) and "${" in value):
            found.append((f"{path}{key}", value, dataclasses.asdict(default)
                          if dataclasses.is_dataclass(default) else default))
    return found


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_top_level_yaml_and_schema_agree(root: str):
    node = yaml.safe_load((CONFIG_DIR / f"{root}.yaml").read_text())
    pairs = _yaml_keys(node, ROOTS[root])
    assert pairs or root == "report"
    assert [(key, value, default) for key, value, default in pairs
            if not _same(value, default) and f"{root}.{key}" not in YAML_OVER_SCHEMA] == []


def test_planner_defaults_are_the_plan_schemas():
    """A config without ``plan:`` (composed before it existed) plans with PlanConf's defaults."""
    from omegaconf import OmegaConf

    from factory.distributed.planner import _plan_settings

    assert _plan_settings(OmegaConf.create({})) == dataclasses.asdict(PlanConf())
    assert _plan_settings(OmegaConf.create({"plan": {"headroom": 0.5}}))["headroom"] == 0.5


def test_report_schema_defaults_are_report_specs():
    """A report file leaves keys out (``ReportConf``); one built in Python does too (``ReportSpec``)."""
    from factory.config.schemas import ReportConf
    from factory.reports.spec import ReportSpec

    spec = {f.name: f for f in dataclasses.fields(ReportSpec)}
    shared = [f for f in dataclasses.fields(ReportConf) if f.name in spec]
    assert len(shared) >= 6
    drifted = [f.name for f in shared if not _same(_schema_default(f), _schema_default(spec[f.name]))]
    assert drifted == []
