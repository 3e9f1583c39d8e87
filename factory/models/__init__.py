"""LightningModules and the networks they wrap.

The classes load on first access: ``factory.models.predict`` (building scored tables, which
the ONNX Runtime backend shares) must import without torch and Lightning (about 6 s here).
"""
from __future__ import annotations

import importlib

_LAZY = {
    "GPT": "factory.models.gpt",
    "LanguageModel": "factory.models.language",
    "SmallCNN": "factory.models.cnn",
    "SupervisedModel": "factory.models.module",
    "TabM": "factory.models.tabm",
    "TabularMLP": "factory.models.tabular_mlp",
    "WideMLP": "factory.models.wide_mlp",
    "load_model": "factory.models.loading",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'factory.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = list(_LAZY)
