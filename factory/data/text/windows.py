"""Windows of ``block_size + 1`` tokens cut from a split's token file, batched, disjoint per rank.

A window ``w`` gives ``x = w[:-1]`` and ``y = w[1:]``: every position predicts the next token.
As in ``factory.data.batches``, the sampler yields one array of window starts per batch and the
dataset answers with the whole batch in one indexing of the memory map (the loader collates
nothing).

Training windows start at random positions, a fresh draw each epoch from a generator seeded by
``(seed, epoch)``: a run is reproducible, and a resumed one draws what the uninterrupted one did.
The epoch's draws are dealt to ranks by position (``starts[rank::world_size]``), so ranks train on
different windows, and every rank takes the same number of batches (ZeRO-3 gathers parameters
in each forward, so a rank with a batch more would wait forever).

Validation and test windows are fixed: consecutive, non-overlapping strides of ``block_size``
(each token predicted once), evenly thinned to at most ``eval_windows``: the same windows in
every run, so perplexities compare. Their count is cut to a multiple of the ranks, too.

The samplers are ``DistributedSampler``s by type only: Lightning then leaves them unwrapped
(its wrapper would reshuffle and pad them), as they already hand each rank its part.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class WindowBatches(Dataset):
    """``dataset[starts] -> (x, y)``: int64 tensors ``(len(starts), block_size)``, ``y`` = ``x`` shifted by one.

    Args:
        tokens: a split's token ids (a memory map), 1-D.
        block_size: tokens per input row.
    """

    def __init__(self, tokens: np.ndarray, block_size: int):
        self.tokens, self.block_size = tokens, block_size
        self._offsets = np.arange(block_size + 1)

    def __len__(self) -> int:
        """The number of windows the tokens hold (possible starts)."""
        return max(len(self.tokens) - self.block_size, 0)

    def __getitem__(self, starts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        windows = np.asarray(self.tokens[starts[:, None] + self._offsets], dtype=np.int64)  # (B, T + 1)
        return torch.from_numpy(windows[:, :-1].copy()), torch.from_numpy(windows[:, 1:].copy())  # (B, T) each


class _RankSampler(DistributedSampler):
    """A rank's share of one epoch's window starts, in batches (subclasses choose the starts)."""

    def __init__(self, batch_size: int, rank: int, world_size: int, seed: int):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        super().__init__(range(0), num_replicas=world_size, rank=rank, shuffle=False, seed=seed)
        self.batch_size = batch_size

    def starts(self) -> np.ndarray:
        """This rank's window starts for the current epoch."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[np.ndarray]:
        starts = self.starts()
        for first in range(0, len(self) * self.batch_size, self.batch_size):
            yield starts[first:first + self.batch_size]


class RandomWindows(_RankSampler):
    """Training windows: ``windows_per_epoch`` random starts per epoch (from ``(seed, epoch)``), dealt to ranks.

    Starts are drawn without replacement while there are enough, so no two ranks (and no two
    batches of an epoch) read the same window. Each rank gets ``windows_per_epoch // world_size``
    of them, in full batches (a short last batch only when there is no full one).

    Args:
        n_tokens: tokens in the train split (at least ``block_size + 1``).
        block_size: tokens per input row.
        batch_size: windows per batch, per rank.
        windows_per_epoch: windows per epoch over all ranks.
        seed: with the epoch, fixes the draws.
        rank, world_size: this process's place among the training processes.
    """

    def __init__(self, n_tokens: int, block_size: int, batch_size: int, windows_per_epoch: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        super().__init__(batch_size, rank, world_size, seed)
        self.n_starts = n_tokens - block_size  # a window w = tokens[s : s + block_size + 1]
        if self.n_starts < 1:
            raise ValueError(f"{n_tokens} tokens hold no window of {block_size + 1}")
        self.windows_per_epoch = windows_per_epoch
        self.per_rank = windows_per_epoch // world_size
        if self.per_rank < 1:
            raise ValueError(f"windows_per_epoch={windows_per_epoch} gives no window to each of {world_size} ranks")

    def __len__(self) -> int:
        return max(self.per_rank // self.batch_size, 1)

    def starts(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch])  # seed 1 epoch 0 differs from seed 0 epoch 1
        n = self.per_rank * self.num_replicas
        drawn = rng.choice(self.n_starts, size=n, replace=n > self.n_starts)
        return drawn[self.rank::self.num_replicas].astype(np.int64)


class EvalWindows(_RankSampler):
    """Validation/test windows: non-overlapping strides, at most ``max_windows``, the same every run.

    Args:
        n_tokens: tokens in the split (at least ``block_size + 1``).
        block_size: tokens per input row; windows start every ``block_size`` tokens.
        batch_size: windows per batch, per rank.
        max_windows: cap on the windows (evenly spaced over the split); None: all.
        rank, world_size: this process's place; the windows are cut to a multiple of ``world_size``.
    """

    def __init__(self, n_tokens: int, block_size: int, batch_size: int, max_windows: int | None = None,
                 rank: int = 0, world_size: int = 1):
        super().__init__(batch_size, rank, world_size, seed=0)
        every = np.arange(0, n_tokens - block_size, block_size, dtype=np.int64)
        if max_windows is not None and len(every) > max_windows:
            every = every[np.unique(np.linspace(0, len(every) - 1, max_windows).round().astype(np.int64))]
        self.total = len(every) // world_size * world_size
        if self.total < 1:
            raise ValueError(f"{n_tokens} tokens hold fewer than {world_size} window(s) of {block_size + 1}")
        self._starts = every[:self.total][rank::world_size]

    def __len__(self) -> int:
        return -(-len(self._starts) // self.batch_size)

    def starts(self) -> np.ndarray:
        return self._starts


def window_loader(tokens: np.ndarray, block_size: int, sampler: _RankSampler, num_workers: int = 0,
                  start_epoch: int = 0, start_batch: int = 0) -> DataLoader:
    """A loader of ``(x, y)`` batches over ``tokens`` as ``sampler`` deals them.

    ``start_epoch``/``start_batch``: where a resumed fit's first pass begins
    (``factory.data.batches.BatchLoader``).
    """
    from factory.data.batches import BatchLoader

    return BatchLoader(
        WindowBatches(tokens, block_size),
        batch_size=None,  # the dataset returns whole batches
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(sampler.seed),  # not torch's global RNG (dropout's)
        start_epoch=start_epoch,
        start_batch=start_batch,
    )
