"""factory: configs in; trained, evaluated and reported models out.

Light to import: heavy modules (torch, Lightning) load on first use of what needs them.
"""
from __future__ import annotations

__version__ = "0.1.0"

from factory.config import compose  # noqa: E402  (light: omegaconf/hydra only)


def train(cfg):
    """Train, validate and test from a composed config; see ``factory.training.run``."""
    from factory.training import run

    return run(cfg)


__all__ = ["__version__", "compose", "train"]
