"""Text sampled from a language model on the command line (``scripts/generate.py``): a run, a
checkpoint or a registered version. The HTTP generate endpoint is ``factory.serving.generation``.

    python scripts/generate.py model=outputs/gpt_small/<run> prompt="def main(" max_new_tokens=80 seed=1
    python scripts/generate.py model=gpt_small@production prompt="import " num_samples=3 top_k=50

``model`` is tried as a path first (a run directory: its best checkpoint, else its last; a
checkpoint file or ZeRO directory), then as a registry reference (``NAME``, ``NAME@VERSION``,
``NAME@STAGE``), then as a run id under ``outputs/``. A seed makes the samples reproducible:
sample ``i`` is drawn with ``seed + i``. Torch loads only once the config checks out.
"""
from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.errors import ConfigError, FactoryError



@dataclass
class Samples:
    """What ``generate`` drew: the prompt, one continuation per sample, the seed of the first."""

    prompt: str
    texts: list[str]
    seed: int
    seed_drawn: bool = False  # no seed given: this one was drawn (printed, so the samples can be repeated)


def generate(cfg) -> Samples:
    """Sample ``cfg.num_samples`` continuations of ``cfg.prompt`` as ``conf/generate.yaml`` says.

    Raises:
        ConfigError: a bad key or value (``temperature < 0``, ``top_k < 1``, ...); ``model`` naming
            nothing, or a model that is not a language model.
    """
    from factory.config.validate import validate

    validate(cfg, root="generate")
    model = load_language_model(str(cfg.model), cfg.registry, cfg.paths.root_dir)
    seed, drawn = (int(cfg.seed), False) if cfg.seed is not None else (secrets.randbelow(2**31), True)
    texts = [model.generate_text(cfg.prompt, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                                 top_k=cfg.top_k, seed=seed + i) for i in range(cfg.num_samples)]
    return Samples(cfg.prompt, texts, seed, drawn)


def show(samples: Samples, out=None, err=None) -> None:
    """Print the samples (the prompt, then its continuation); several are headed ``--- sample i (seed s) ---``.

    A drawn seed goes to stderr, so that piping the samples keeps only their text.
    """
    out, err = out or sys.stdout, err or sys.stderr
    for i, text in enumerate(samples.texts):
        if len(samples.texts) > 1:
            print(f"--- sample {i + 1} (seed {samples.seed + i}) ---", file=out)
        print(samples.prompt + text, file=out)
    if samples.seed_drawn:
        print(f"seed {samples.seed} (pass seed={samples.seed} to draw these samples again)", file=err)


def load_language_model(ref: str, registry: str | None = None, root: str | Path | None = None) -> Any:
    """The language model ``ref`` names, in eval mode: a ``LanguageModel`` or a registered one
    (both have ``generate_text`` and ``stream_text``).

    Args:
        ref: a run directory, a checkpoint (file or ZeRO directory), a registry reference
            (``NAME``, ``NAME@VERSION``, ``NAME@STAGE``) or a run id under ``<root>/outputs``.
        registry: the registry directory (``None``: ``factory.registry.default_dir()``).
        root: the directory holding ``outputs/`` for a run id.

    Raises:
        ConfigError: ``ref`` names nothing; a run, checkpoint or version that is not a language model.
    """
    path = Path(ref)
    if path.exists():
        return _from_path(path, ref)
    from factory import registry as models

    try:
        version = models.get(ref, registry)
    except FactoryError as not_registered:
        from factory.rundir.catalog import find_run

        try:
            run_dir = find_run(ref, root)
        except FactoryError:
            raise ConfigError(f"model: {ref!r} is no run directory or checkpoint, no run id under "
                              f"{Path(root or '.') / 'outputs'}, nor a registered model ({not_registered})") from None
        return _from_path(run_dir, ref)
    from factory.registry import language

    kind = language.kind(version.metadata())
    if kind != language.KIND:  # before the checkpoint loads
        raise _not_a_language_model(ref, f"registered {kind} model")
    return models.load(ref, registry)  # a RegisteredLanguageModel


def _from_path(path: Path, ref: str) -> Any:
    """A run directory (refused before torch loads when its config names another model) or a checkpoint."""
    from factory.rundir.layout import is_run_dir

    if is_run_dir(path):
        from factory.registry.language import MODEL_TARGET
        from factory.rundir.catalog import read_config

        try:
            target = (read_config(path).get("model") or {}).get("_target_")
        except Exception:  # noqa: BLE001: an unreadable config.yaml: the checkpoint says what it is
            target = None
        if target is not None and target != MODEL_TARGET:  # refused before torch loads
            raise _not_a_language_model(ref, f"run of {str(target).rsplit('.', 1)[-1]}")
    from factory.models import load_model

    try:
        model = load_model(path)
    except ConfigError as e:  # load_model names its argument ckpt_path; here it is model=
        raise ConfigError(f"model: {str(e).removeprefix('ckpt_path: ')}") from None
    if not hasattr(model, "generate_text"):
        raise _not_a_language_model(ref, f"{getattr(model, 'task', 'tabular')} model")
    return model


def _not_a_language_model(ref: str, what: str) -> ConfigError:
    return ConfigError(f"model: {ref} is a {what}, not a language model: generate samples text from a "
                       "language model's run, checkpoint or registered version (model=gpt, e.g. experiment=gpt_small)")
