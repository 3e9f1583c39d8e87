"""Data: sources, validation, splits, preprocessing and the DataModule.

``TabularDataModule`` is imported on first access so that ``factory.data.spec`` and
the sources stay importable without torch.
"""
from __future__ import annotations


def __getattr__(name: str):
    if name == "TabularDataModule":
        from factory.data.datamodule import TabularDataModule

        return TabularDataModule
    raise AttributeError(f"module 'factory.data' has no attribute {name!r}")


__all__ = ["TabularDataModule"]
