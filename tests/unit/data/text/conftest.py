"""A tiny corpus for the text tests: a few KB of documents from a seeded vocabulary."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

WORDS = ("the cat sat on a mat while dogs ran past old trees and birds sang songs of rain "
         "def return import class for in if else print value list dict").split()


def documents(n: int = 40, seed: int = 0) -> list[str]:
    """``n`` documents of 20-80 words each (about 100-400 bytes)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 80))) + ".\n" for _ in range(n)]


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A folder of 40 .txt files, one document each."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i, text in enumerate(documents()):
        (folder / f"doc{i:02d}.txt").write_text(text)
    return folder


@pytest.fixture
def module(corpus_dir: Path, tmp_path: Path):
    """A ``TextDataModule`` factory over ``corpus_dir`` (vocabulary 300, block 16), caching in tmp_path."""
    from factory.data.text import TextDataModule

    def make(**overrides):
        args = {"source": {"path": str(corpus_dir)}, "tokenizer": {"vocab_size": 300}, "block_size": 16,
                "batch_size": 4, "val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0,
                "cache_dir": str(tmp_path / "text-cache"), **overrides}
        return TextDataModule(**args)

    return make
