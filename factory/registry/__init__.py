"""The model registry: named, numbered, staged copies of runs' best checkpoints.

A file-based registry (``$FACTORY_REGISTRY``, else ``${FACTORY_ROOT:-.}/registry``; see
``factory.registry.store`` for the layout), safe under concurrent writers, with an audit
log of every change. CLI: ``scripts/registry.py``. Importing this package loads no torch;
``register`` and ``load`` import what they need.

Example:
    >>> from factory import registry
    >>> v = registry.register("outputs/fraud_detection/2026-11-24_03-36-13_203edf")
    >>> registry.promote(v.name, v.version, "production")
    >>> fraud = registry.load("fraud_detection@production")
    >>> fraud.predict(new_rows)            # raw columns in; prediction and score out
"""
from __future__ import annotations

from pathlib import Path

from factory.registry.loading import RegisteredModel
from factory.registry.store import STAGES, ModelVersion, Registry, default_dir, parse_ref

__all__ = ["Registry", "ModelVersion", "RegisteredModel", "STAGES", "default_dir", "parse_ref",
           "register", "versions", "get", "show", "promote", "load", "audit"]

PathLike = str | Path | None


def register(run: str | Path, name: str | None = None, registry: PathLike = None,
             root: PathLike = None) -> ModelVersion:
    """Register a completed run's best checkpoint as the next version of ``name``.

    Args:
        run: a run directory or run id.
        name: the model name; default the run's experiment (``task_name``).
        registry: the registry directory; default ``default_dir()``.
        root: the directory holding ``outputs/`` when ``run`` is an id.
    """
    from factory.registry.capture import register as _register

    return _register(Registry(registry), run, name, root)


def versions(name: str | None = None, registry: PathLike = None) -> list[ModelVersion]:
    """Every registered version (of ``name``), by name then version number."""
    return Registry(registry).versions(name)


def get(ref: str, registry: PathLike = None) -> ModelVersion:
    """The version ``ref`` names: ``NAME`` (latest), ``NAME@3``, ``NAME@production``."""
    return Registry(registry).get(ref)


def show(ref: str, registry: PathLike = None) -> dict:
    """Everything recorded about ``ref``: stage, metrics, data fingerprint, config, run, who and when."""
    return get(ref, registry).metadata()


def promote(name: str, version: int, stage: str, registry: PathLike = None) -> list[tuple[int, str, str]]:
    """Move a version to ``staging``, ``production`` or ``archived`` (see ``Registry.promote``)."""
    return Registry(registry).promote(name, version, stage)


def load(ref: str, registry: PathLike = None, verify: bool = True):
    """Load ``ref`` for inference: a ``RegisteredModel`` (eval-mode model, fitted preprocessing)."""
    from factory.registry.loading import load as _load

    return _load(Registry(registry), ref, verify)


def audit(registry: PathLike = None) -> list[dict]:
    """The registry's audit log, oldest first."""
    return Registry(registry).audit()

