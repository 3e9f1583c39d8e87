"""Unigram and bigram models of a token stream: the baselines a language model's perplexity is read against.

Both are fitted on the train tokens and score the same tokens: every token of the evaluated
split that has a predecessor there (``tokens[1:]``), all of them, not sampled windows.

- **unigram**, add-one (Laplace) smoothing over the vocabulary: ``p(w) = (c(w) + 1) / (N + V)``.
- **bigram**, Witten-Bell interpolation with that unigram:
  ``p(w | v) = (c(v, w) + T(v) p(w)) / (c(v) + T(v))``, where ``c(v)`` counts ``v`` as a context and
  ``T(v)`` the distinct tokens seen after it. No knob to tune on the evaluated tokens; a context the
  train tokens never had scores as the unigram.

Losses are mean cross-entropies in nats (as the model's ``val/loss``), perplexity ``exp(loss)``.
Numpy only, vectorized, in chunks: a memory-mapped split is read a slice at a time.

Example:
    >>> found = ngram_baselines(np.array([0, 1, 0, 1, 2]), np.array([0, 1, 2, 0]), vocab_size=3)
    >>> {name: round(values["perplexity"], 4) for name, values in found.items()}
    {'unigram': 3.0526, 'bigram': 2.0787}
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from factory.errors import DataError

#: Tokens read at a time: a chunk's pair ids, sorts and lookups stay ~1 GB at most.
CHUNK = 1 << 24


@dataclass(frozen=True)
class Bigram:
    """A fitted bigram model: sorted pair ids (``v * V + w``) with their counts, per-context totals."""

    vocab_size: int
    unigram: np.ndarray  # (V,) p(w), Laplace-smoothed
    pair_ids: np.ndarray  # (P,) sorted int64
    pair_counts: np.ndarray  # (P,) c(v, w)
    context_counts: np.ndarray  # (V,) c(v): pairs starting with v
    successors: np.ndarray  # (V,) T(v): distinct w after v

    def probabilities(self, previous: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """``p(tokens[i] | previous[i])`` for int64 arrays of one length."""
        ids = previous * self.vocab_size + tokens
        at = np.minimum(np.searchsorted(self.pair_ids, ids), max(len(self.pair_ids) - 1, 0))
        seen = self.pair_ids[at] == ids if len(self.pair_ids) else np.zeros(len(ids), dtype=bool)
        pair = np.where(seen, self.pair_counts[at] if len(self.pair_ids) else 0, 0)
        context, distinct, unigram = self.context_counts[previous], self.successors[previous], self.unigram[tokens]
        with np.errstate(invalid="ignore", divide="ignore"):  # unseen contexts: 0/0, replaced by the unigram
            interpolated = (pair + distinct * unigram) / (context + distinct)
        return np.where(context > 0, interpolated, unigram)


def fit_unigram(tokens, vocab_size: int) -> np.ndarray:
    """``p(w)`` for every token id (V,), add-one smoothed: an id never seen still has ``1 / (N + V)``."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for part in _chunks(tokens, vocab_size):
        counts += np.bincount(part, minlength=vocab_size)
    return (counts + 1) / (counts.sum() + vocab_size)


def fit_bigram(tokens, vocab_size: int) -> Bigram:
    """Count the pairs of ``tokens`` (sorted unique pair ids per chunk, merged).

    Pairs are counted by sorting, not by ``bincount`` over all ``V * V`` ids: that dense table
    would be 537 MB at ``V = 8192`` and 20 GB at GPT-2's 50,257.
    """
    ids, counts = [], []
    for part in _chunks(tokens, vocab_size, overlap=1):
        found, n = np.unique(part[:-1] * vocab_size + part[1:], return_counts=True)
        ids.append(found)
        counts.append(n)
    pair_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    pair_counts = np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)
    if len(ids) > 1:  # a pair seen in several chunks: one entry, counts summed
        pair_ids, inverse = np.unique(pair_ids, return_inverse=True)
        pair_counts = np.bincount(inverse, weights=pair_counts).astype(np.int64)
    context = pair_ids // vocab_size
    return Bigram(vocab_size, fit_unigram(tokens, vocab_size), pair_ids, pair_counts,
                  np.bincount(context, weights=pair_counts, minlength=vocab_size).astype(np.int64),
                  np.bincount(context, minlength=vocab_size))


def cross_entropy(model: np.ndarray | Bigram, tokens) -> float:
    """Mean ``-ln p`` over ``tokens[1:]``, each given its predecessor (a bigram) or alone (a unigram).

    Raises:
        DataError: fewer than two tokens.
    """
    vocab_size = model.vocab_size if isinstance(model, Bigram) else len(model)
    if len(tokens) < 2:
        raise DataError(f"n-gram baselines: {len(tokens)} evaluated token(s); at least 2 are needed")
    total = 0.0
    for part in _chunks(tokens, vocab_size, overlap=1):
        previous, current = part[:-1], part[1:]
        p = model.probabilities(previous, current) if isinstance(model, Bigram) else model[current]
        total -= float(np.log(p).sum())
    return total / (len(tokens) - 1)


def ngram_baselines(train, evaluated, vocab_size: int, windows: tuple[np.ndarray, int] | None = None
                    ) -> dict[str, dict[str, float]]:
    """The unigram and bigram fitted on ``train``, scored on ``evaluated``: ``{name: {"loss", "perplexity"}}``.

    Metric names are the model's without the split prefix, as every baseline in ``metrics.json``
    (``factory.rundir.baselines``).

    Args:
        train: token ids (a numpy array or memmap of any integer type).
        evaluated: token ids of the split scored (val).
        vocab_size: the tokenizer's vocabulary size (ids are ``0 .. vocab_size - 1``).
        windows: ``(starts, block_size)``: score only the targets of these windows of ``evaluated``
            (``evaluated[s + 1 : s + block_size + 1]``, each given its predecessor), the tokens a
            language model's ``val/perplexity`` is measured on; None: every token.

    Raises:
        DataError: a token id outside the vocabulary; fewer than two evaluated tokens.
    """
    results = {}
    for name, model in (("unigram", fit_unigram(train, vocab_size)), ("bigram", fit_bigram(train, vocab_size))):
        if windows is None:
            loss = cross_entropy(model, evaluated)
        else:  # windows of one length: the mean of their means is the mean over their tokens
            starts, block_size = windows
            loss = float(np.mean([cross_entropy(model, evaluated[s:s + block_size + 1]) for s in starts]))
        results[name] = {"loss": loss, "perplexity": math.exp(loss)}
    return results


def _chunks(tokens, vocab_size: int, overlap: int = 0):
    """``tokens`` as int64 slices of ``CHUNK`` (+ ``overlap`` shared with the next: pairs across the cut)."""
    step = CHUNK
    for start in range(0, max(len(tokens) - overlap, 0), step):
        part = np.asarray(tokens[start:start + step + overlap], dtype=np.int64)
        if len(part) and (part.min() < 0 or part.max() >= vocab_size):
            bad = int(part.max() if part.max() >= vocab_size else part.min())
            raise DataError(f"n-gram baselines: token id {bad} is outside the vocabulary (size {vocab_size})")
        yield part
