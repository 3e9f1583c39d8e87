"""factory: configs in; trained, evaluated and reported models out.

Light to import: heavy modules (torch, Lightning, pandas, matplotlib) load on first use
of what needs them.

Notebook API: ``compose``, ``train``, ``runs()``, ``load_run``, ``metrics_table``, ``plots`` (see
``factory.analysis.notebook``); ``registry`` for registered models (``factory.registry.load("fraud@production")``);
``explore`` (a data config's profile) and ``compare`` (runs or a sweep side by side).
"""
from __future__ import annotations

import importlib

from factory.config import compose  # noqa: E402  (light: omegaconf/hydra only)


def runs(root=None):
    """Every run under ``<root>/outputs`` as a pandas DataFrame, newest first.

    See ``factory.rundir.catalog.list_runs``; ``root`` defaults to ``$FACTORY_ROOT`` or the cwd.
    """
    from factory.rundir.catalog import list_runs

    return list_runs(root)


# Loaded on first access, so `import factory` stays light.
# train: factory.training.launch.train (in this kernel, or as a process for DDP and DeepSpeed).
_LAZY = {"train": "factory.training.launch", "load_run": "factory.analysis.notebook",
         "list_runs": "factory.rundir.catalog", "LoadedRun": "factory.analysis.notebook",
         "metrics_table": "factory.analysis.notebook"}
# The notebook API's modules by their short names: `from factory import plots` as the README shows.
_LAZY_MODULES = {"plots": "factory.analysis.plots", "notebook": "factory.analysis.notebook",
                 "predictions": "factory.analysis.predictions", "explore": "factory.analysis.explore",
                 "compare": "factory.analysis.compare", "registry": "factory.registry"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _LAZY_MODULES:
        return importlib.import_module(_LAZY_MODULES[name])
    if name == "__version__":  # the installed distribution's, so there is one copy (pyproject.toml)
        from factory.rundir.provenance import factory_version

        return factory_version()
    raise AttributeError(f"module 'factory' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_LAZY_MODULES) | {"__version__"})


__all__ = ["__version__", "compose", "train", "runs", "load_run", "list_runs", "LoadedRun", "metrics_table", "plots",
           "registry", "explore", "compare"]
