"""Train/val/test by document: deterministic from the seed, shares of the text, nothing shared."""
from __future__ import annotations

import numpy as np

from factory.data.text.split import split_documents


def test_every_document_in_exactly_one_split_by_byte_share():
    sizes = list(np.random.default_rng(0).integers(50, 500, size=200))
    parts = split_documents(sizes, 0.1, 0.2, seed=3)
    together = np.concatenate([parts["train"], parts["val"], parts["test"]])
    assert sorted(together.tolist()) == list(range(200))
    total = sum(sizes)
    assert abs(sum(sizes[i] for i in parts["val"]) / total - 0.1) < 0.01
    assert abs(sum(sizes[i] for i in parts["test"]) / total - 0.2) < 0.01


def test_same_seed_same_split_other_seed_other_split():
    sizes = [100] * 50
    a, b = split_documents(sizes, 0.2, 0.2, seed=1), split_documents(sizes, 0.2, 0.2, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["val"], split_documents(sizes, 0.2, 0.2, seed=2)["val"])


def test_few_documents_keep_one_for_train():
    parts = split_documents([10, 10], 0.4, 0.4, seed=0)
    assert parts["train"].size == 1 and parts["val"].size == 1 and parts["test"].size == 0
    assert split_documents([10], 0.1, 0.1, seed=0)["train"].tolist() == [0]
