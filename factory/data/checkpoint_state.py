"""Where a factory checkpoint keeps its DataModule's state: the preprocessing fitted in training.

Lightning stores a DataModule's ``state_dict()`` under its class's ``__qualname__``; both of
factory's tabular DataModules save the same state (``{"preprocessor": ...}``), so every reader of a
checkpoint (evaluation, registry, export, serving) asks here instead of naming one class. A
language model's (``TextDataModule``) holds its tokenizer instead (``{"tokenizer": ...}``).
"""
from __future__ import annotations

#: The DataModules whose state a factory checkpoint may hold (in-memory, streamed, text).
STATE_KEYS = ("TabularDataModule", "StreamingDataModule", "TextDataModule")


def datamodule_state(checkpoint: dict) -> dict | None:
    """The DataModule state a loaded checkpoint holds; None when it holds none (not factory's)."""
    return next((checkpoint[key] for key in STATE_KEYS if key in checkpoint), None)
