"""Windows: (x, y) shifted by one; random per epoch yet reproducible; disjoint and equal per rank; fixed eval."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from factory.data.text.windows import EvalWindows, RandomWindows, WindowBatches, window_loader

TOKENS = np.arange(1000, dtype=np.uint16)  # token i is i: a window's values are its positions


def test_batch_is_x_and_y_shifted_by_one_as_int64():
    x, y = WindowBatches(TOKENS, 16)[np.array([0, 100, 983])]
    assert x.shape == y.shape == (3, 16) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert x[1, 0].item() == 100 and y[2, -1].item() == 999  # the last window ends at the last token
    assert len(WindowBatches(TOKENS, 16)) == 984


def test_epochs_are_reproducible_and_differ():
    def epoch(e, seed=0):
        sampler = RandomWindows(1000, 16, batch_size=8, windows_per_epoch=64, seed=seed)
        sampler.set_epoch(e)
        return np.concatenate(list(sampler))

    assert np.array_equal(epoch(0), epoch(0))
    assert not np.array_equal(epoch(0), epoch(1))
    assert not np.array_equal(epoch(0), epoch(0, seed=1))
    assert len(epoch(0)) == 64 and len(set(epoch(0).tolist())) == 64  # no window twice in an epoch
    assert epoch(0).max() <= 1000 - 17


def test_two_ranks_read_disjoint_windows_in_equal_batches():
    ranks = [RandomWindows(1000, 16, batch_size=8, windows_per_epoch=70, seed=0, rank=r, world_size=2)
             for r in range(2)]
    for sampler in ranks:
        sampler.set_epoch(3)
    batches = [list(sampler) for sampler in ranks]
    assert len(batches[0]) == len(batches[1]) == len(ranks[0]) == 4  # 35 windows each: 4 full batches
    starts = [set(np.concatenate(b).tolist()) for b in batches]
    assert starts[0].isdisjoint(starts[1])
    one = RandomWindows(1000, 16, batch_size=8, windows_per_epoch=70, seed=0)
    one.set_epoch(3)
    assert starts[0] | starts[1] <= set(one.starts().tolist())  # the same epoch's draws, dealt out


def test_eval_windows_are_fixed_strides_capped_and_split_by_rank():
    every = EvalWindows(1000, 16, batch_size=10)
    assert every.starts().tolist() == list(range(0, 984, 16))  # non-overlapping: each token predicted once
    capped = EvalWindows(1000, 16, batch_size=10, max_windows=7).starts()
    assert len(capped) == 7 and capped[0] == 0 and capped[-1] == 976  # spread over the whole split
    parts = [EvalWindows(1000, 16, 4, max_windows=7, rank=r, world_size=2).starts() for r in range(2)]
    assert len(parts[0]) == len(parts[1]) == 3 and set(parts[0]).isdisjoint(parts[1])
    with pytest.raises(ValueError, match="fewer than 2 window"):
        EvalWindows(20, 16, 4, rank=0, world_size=2)


def test_a_resumed_loader_continues_mid_epoch():
    def loader(epoch=0, batch=0):
        return window_loader(TOKENS, 16, RandomWindows(1000, 16, 4, 40, seed=5), start_epoch=epoch,
                             start_batch=batch)

    whole = loader()
    whole.sampler.set_epoch(1)
    expected = [x for x, _ in whole][3:]
    resumed = [x for x, _ in loader(epoch=1, batch=3)]
    assert len(resumed) == len(expected) == 7
    assert all(torch.equal(a, b) for a, b in zip(resumed, expected))
