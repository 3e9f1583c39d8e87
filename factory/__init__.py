"""factory: configs in; trained, evaluated and reported models out.

Light to import: heavy modules (torch, Lightning) load on first use of what needs them.
"""
from __future__ import annotations

__version__ = "0.1.0"

from factory.config import compose  # noqa: E402  (light: omegaconf/hydra only)


def train(cfg):
    """Train, validate and test from a composed config; returns a ``RunResult``.

    Single-device runs train in this process; DDP and DeepSpeed runs, which Lightning
    refuses inside notebooks, run ``scripts/train.py`` as a subprocess with the same
    config and stream its output (``factory.launch``).
    """
    from factory.launch import needs_subprocess, train_in_subprocess
    from factory.training import run

    return train_in_subprocess(cfg) if needs_subprocess(cfg) else run(cfg)


__all__ = ["__version__", "compose", "train"]
