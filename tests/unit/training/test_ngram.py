"""The unigram and bigram baselines of a language model, against values computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from factory.errors import DataError
from factory.training import ngram

# train: counts c(0)=2, c(1)=2, c(2)=1 (N=5, V=3); pairs (0,1) x2, (1,0), (1,2)
TRAIN = np.array([0, 1, 0, 1, 2], dtype=np.uint16)
# scored: 1 after 0, 2 after 1, 0 after 2 (a context train never had)
VAL = np.array([0, 1, 2, 0], dtype=np.uint16)


def test_unigram_is_add_one_smoothed():
    assert ngram.fit_unigram(TRAIN, 3) == pytest.approx([3 / 8, 3 / 8, 2 / 8])
    assert ngram.fit_unigram(np.array([0, 0]), 4) == pytest.approx([3 / 6, 1 / 6, 1 / 6, 1 / 6])  # unseen ids


def test_bigram_is_witten_bell_interpolated_with_the_unigram():
    bigram = ngram.fit_bigram(TRAIN, 3)
    p = bigram.probabilities(np.array([0, 1, 2, 1]), np.array([1, 2, 0, 1]))
    # (c(v,w) + T(v) p(w)) / (c(v) + T(v)): T(0)=1, T(1)=2; context 2 unseen -> p(w)
    assert p == pytest.approx([(2 + 1 * 3 / 8) / 3, (1 + 2 * 2 / 8) / 4, 3 / 8, (0 + 2 * 3 / 8) / 4])


def test_each_context_is_a_distribution():
    rng = np.random.default_rng(0)
    bigram = ngram.fit_bigram(rng.integers(0, 7, 200), 7)
    previous = np.repeat(np.arange(7), 7)
    assert bigram.probabilities(previous, np.tile(np.arange(7), 7)).reshape(7, 7).sum(axis=1) == pytest.approx(1.0)


def test_perplexities_on_every_evaluated_token():
    found = ngram.ngram_baselines(TRAIN, VAL, vocab_size=3)
    unigram = -(math.log(3 / 8) + math.log(2 / 8) + math.log(3 / 8)) / 3
    bigram = -(math.log(19 / 24) + math.log(3 / 8) + math.log(3 / 8)) / 3
    assert found["unigram"] == pytest.approx({"loss": unigram, "perplexity": (8 / 3 * 4 * 8 / 3) ** (1 / 3)})
    assert found["bigram"] == pytest.approx({"loss": bigram, "perplexity": math.exp(bigram)})
    assert found["bigram"]["perplexity"] < found["unigram"]["perplexity"]


def test_chunks_give_the_same_counts_and_scores(monkeypatch):
    rng = np.random.default_rng(1)
    train, val = rng.integers(0, 11, 1000), rng.integers(0, 11, 301)
    whole = ngram.ngram_baselines(train, val, 11)
    monkeypatch.setattr(ngram, "CHUNK", 7)  # pairs across every cut, each counted once
    chunked = ngram.fit_bigram(train, 11)
    assert chunked.pair_counts.sum() == len(train) - 1
    assert _flat(ngram.ngram_baselines(train, val, 11)) == pytest.approx(_flat(whole))


def test_reads_a_memmap(tmp_path):
    path = tmp_path / "train.bin"
    np.memmap(path, dtype=np.uint16, mode="w+", shape=(5,))[:] = TRAIN
    train = np.memmap(path, dtype=np.uint16, mode="r")
    assert _flat(ngram.ngram_baselines(train, VAL, 3)) == pytest.approx(_flat(ngram.ngram_baselines(TRAIN, VAL, 3)))


def test_bad_tokens_are_one_line():
    with pytest.raises(DataError, match="token id 3 is outside the vocabulary \\(size 3\\)"):
        ngram.ngram_baselines(np.array([0, 3]), VAL, 3)
    with pytest.raises(DataError, match="1 evaluated token"):
        ngram.ngram_baselines(TRAIN, np.array([1]), 3)


def _flat(found: dict) -> dict:
    return {f"{name}/{metric}": value for name, values in found.items() for metric, value in values.items()}
