"""Train/val/test by document: no document's text is in two splits.

Windows cut from one token stream would otherwise put the end of a training document at the
start of a validation window. The documents are shuffled by ``split_seed``; val takes them in
that order until it holds about ``val_fraction`` of the corpus's bytes, test likewise, train the rest
(so the fractions are of text, not of document counts, which vary in size a thousandfold).
"""
from __future__ import annotations

import numpy as np

SPLITS = ("train", "val", "test")


def split_documents(sizes: list[int], val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Document indices of each split, each in corpus order.

    Args:
        sizes: each document's size (bytes); the shares are of their sum.
        val_fraction, test_fraction: shares of the total for val and test; a share above 0
            takes at least one document while any is left for train.
        seed: the shuffle's seed.

    Returns:
        ``{"train": idx, "val": idx, "test": idx}``, int64 arrays (possibly empty).

    Example:
        >>> split_documents([10, 10, 10, 10], 0.25, 0.25, seed=0)["val"].size
        1
    """
    n = len(sizes)
    order = np.random.default_rng(seed).permutation(n)
    weights = np.asarray(sizes, dtype=np.float64)[order]
    total = float(weights.sum())
    taken: dict[str, np.ndarray] = {}
    start = 0
    for name, fraction in (("val", val_fraction), ("test", test_fraction)):
        end = start
        if fraction > 0:
            goal = fraction * total
            # the count whose bytes come closest to the goal: at least one, never the last (train's)
            end = start + 1 + int(np.argmin(np.abs(np.cumsum(weights[start:]) - goal)))
            end = min(end, n - 1) if n - start > 1 else start
        taken[name] = np.sort(order[start:end])
        start = end
    taken["train"] = np.sort(order[start:])
    return {name: taken[name].astype(np.int64) for name in SPLITS}
