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
    >>> registry.export("fraud_detection@production", quantize=True)   # model.onnx, model.int8.onnx
    >>> registry.load("fraud_detection@production", backend="onnx").predict(new_rows)  # same, no torch
    >>> registry.load("gpt_small@production").generate_text("def main(", max_new_tokens=40, seed=1)
"""
from __future__ import annotations

from pathlib import Path

from factory.errors import FactoryError
from factory.registry.language import RegisteredLanguageModel
from factory.registry.loading import RegisteredModel
from factory.registry.store import STAGES, ModelVersion, Registry, default_dir, parse_ref

__all__ = ["Registry", "ModelVersion", "RegisteredModel", "RegisteredLanguageModel", "STAGES", "default_dir",
           "parse_ref", "register", "versions", "get", "show", "promote", "load", "export", "exported", "audit",
           "log_gate"]

PathLike = str | Path | None


def register(run: str | Path, name: str | None = None, registry: PathLike = None,
             root: PathLike = None, export: bool = False) -> ModelVersion:
    """Register a completed run's best checkpoint as the next version of ``name``.

    Args:
        run: a run directory or run id.
        name: the model name; default the run's experiment (``task_name``).
        registry: the registry directory; default ``default_dir()``.
        root: the directory holding ``outputs/`` when ``run`` is an id.
        export: also export it to ONNX (``model.onnx``, as ``export``), best effort: a model
            that cannot be exported is registered all the same and ``exports.json`` says why.
            Off by default: it loads torch and traces the model (seconds; see docs/serving.md).
            A language model is never exported (it keeps its ``tokenizer.json`` instead).
    """
    from factory.registry.capture import register as _register

    store = Registry(registry)
    version = _register(store, run, name, root)
    if export and version.metadata().get("kind") != "language_model":  # a language model has no ONNX graph
        from factory.registry.exports import export as _export, record_failure

        try:
            _export(store, version.ref, verify=False)  # just copied and hashed
        except Exception as e:  # noqa: BLE001: best effort: the version stands, exports.json says why
            reason = (str(e).strip().splitlines() or [""])[0]
            record_failure(store, version, f"{type(e).__name__}: {reason}" if not isinstance(e, FactoryError) else reason)
    return version


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


def load(ref: str, registry: PathLike = None, verify: bool = True, backend: str = "torch"):
    """Load ``ref`` for inference: a ``RegisteredModel`` scoring through ``backend``.

    ``torch``: the eval-mode model and fitted preprocessing from the checkpoint; ``onnx``:
    the exported graph in ONNX Runtime (no torch import), the same ``predict`` result;
    ``onnx-int8``: its quantized copy. ``verify`` checks the file's sha256.
    A language model is a ``RegisteredLanguageModel`` (``.generate_text``, ``.stream_text``),
    torch only.
    """
    from factory.registry.loading import load as _load

    return _load(Registry(registry), ref, verify, backend)


def export(ref: str, registry: PathLike = None, quantize: bool = False) -> dict:
    """Export ``ref`` to ONNX into its version folder (``model.onnx``; ``model.int8.onnx`` with
    ``quantize``), recorded with sha256 in ``exports.json`` and the audit log; returns that manifest."""
    from factory.registry.exports import export as _export

    return _export(Registry(registry), ref, quantize)


def exported(ref: str, registry: PathLike = None) -> dict:
    """``ref``'s ``exports.json``: each exported file's sha256, size, time; empty if never exported."""
    from factory.registry.exports import read

    return read(get(ref, registry))


def audit(registry: PathLike = None) -> list[dict]:
    """The registry's audit log, oldest first."""
    return Registry(registry).audit()


def log_gate(name: str, version: int, promote: bool, details: dict, registry: PathLike = None) -> dict:
    """Append a promotion gate's decision on ``name`` v``version`` to the audit log (action
    ``gate_promote`` or ``gate_keep``, with ``details``: figures, reasons, the record); the entry."""
    return Registry(registry).log_gate(name, version, promote, details)
