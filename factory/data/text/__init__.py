"""Text for language models: sources, a byte-level BPE tokenizer, cached token files, windows.

``TextDataModule`` (``conf/data/text.yaml``) is imported on first access: ``TextSpec`` and the
config path stay free of torch, numpy and ``tokenizers``.

    files or the embedded stdlib corpus (corpus.py, embedded.py)
      -> split by document (split.py) -> BPE tokenizer trained on train (tokenizer.py)
      -> one memory-mapped token file per split, cached (tokens.py)
      -> random windows of block_size + 1 tokens, disjoint per rank (windows.py)
"""
from __future__ import annotations

from factory.data.text.spec import LANGUAGE_MODELING, TextSpec


def __getattr__(name: str):
    if name == "TextDataModule":
        from factory.data.text.datamodule import TextDataModule

        return TextDataModule
    raise AttributeError(f"module 'factory.data.text' has no attribute {name!r}")


__all__ = ["LANGUAGE_MODELING", "TextDataModule", "TextSpec"]
