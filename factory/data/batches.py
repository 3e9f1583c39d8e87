"""Batches cut from preloaded tensors in one indexing operation, never row by row.

A ``DataLoader`` over a per-row dataset calls ``__getitem__`` and collates once per row;
fetching each batch with one tensor index ran twice as fast under ``Trainer.fit`` on
CPU (197k against 99k samples/s for a small MLP). Here the sampler yields one row-index array per
batch and the dataset answers it with ``tensor[rows]``; the loader runs with
``batch_size=None`` so nothing is collated.

Shuffling lives in the sampler, which stays in the main process: ``set_epoch`` (called
by Lightning at each epoch start) reseeds it, so the order changes between epochs and
repeats across runs, with or without workers, and after resuming from a checkpoint.
Workers each fetch whole batches the sampler hands out, so none is duplicated. Under
DDP, Lightning wraps this sampler in its ``DistributedSamplerWrapper`` (with the
Trainer's default ``use_distributed_sampler=True``), which shuffles the batches' order
by its own epoch and gives rank ``r`` batches ``r, r + W, ...`` of it, padded by repeating
the first so every rank steps equally. A resumed fit starts where its checkpoint stood
(``BatchLoader``: epoch and batch), so its batches are those of an uninterrupted one.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

Batch = tuple[torch.Tensor, ...]


class RowBatchSampler(Sampler[np.ndarray]):
    """Yields one int64 array of row positions per batch.

    Args:
        n_rows: rows in the dataset.
        batch_size: rows per batch; the last batch may be smaller unless ``drop_last``.
        shuffle: permute rows anew each epoch (train); otherwise rows come in order.
        seed: with the epoch, fixes the permutation.
        drop_last: skip a final batch smaller than ``batch_size``.
    """

    def __init__(self, n_rows: int, batch_size: int, shuffle: bool = False, seed: int = 0, drop_last: bool = False):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n_rows, self.batch_size = n_rows, batch_size
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation the next iteration uses."""
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(self.n_rows, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.shuffle:
            # (seed, epoch) as a seed sequence: seed 1 epoch 0 differs from seed 0 epoch 1.
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n_rows)
        else:
            order = np.arange(self.n_rows)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start : start + self.batch_size]


class TensorBatches(Dataset):
    """Aligned tensors indexed by whole batches: ``dataset[rows] -> tuple of tensor[rows]``.

    Args:
        tensors: tensors sharing their first dimension (rows).
    """

    def __init__(self, *tensors: torch.Tensor):
        if len({len(t) for t in tensors}) > 1:
            raise ValueError(f"tensors differ in rows: {[len(t) for t in tensors]}")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, rows: np.ndarray) -> Batch:
        index = torch.from_numpy(rows)
        return tuple(t[index] for t in self.tensors)


def batch_loader(
    tensors: Batch,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    num_workers: int = 0,
    start_epoch: int = 0,
    start_batch: int = 0,
) -> DataLoader:
    """A ``DataLoader`` yielding ``tensors`` cut into batches, ``len()`` = batches per epoch.

    Args:
        tensors: e.g. ``(x_num, x_cat, y)``; each batch is the same tuple, sliced.
        batch_size: rows per batch.
        shuffle: reshuffle rows every epoch (from ``seed`` and the epoch number).
        seed: seed of the shuffle.
        drop_last: drop a final short batch.
        num_workers: worker processes; kept alive between epochs when > 0.
        start_epoch, start_batch: where the first pass begins (a resumed fit); later
            passes follow ``set_epoch``.

    Example:
        >>> loader = batch_loader((x_num, x_cat, y), 1024, shuffle=True, seed=42)
        >>> loader.sampler.set_epoch(1)  # Lightning does this itself
    """
    sampler = RowBatchSampler(len(tensors[0]), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
    return BatchLoader(
        TensorBatches(*tensors),
        batch_size=None,  # the dataset returns whole batches: no collation
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        # Its own generator: creating an iterator draws a worker seed, which would otherwise
        # come from torch's global RNG and shift dropout by when loaders happen to be iterated.
        generator=torch.Generator().manual_seed(seed),
        start_epoch=start_epoch,
        start_batch=start_batch,
    )


class BatchLoader(DataLoader):
    """A ``DataLoader`` whose first pass can be epoch ``start_epoch`` from batch ``start_batch``.

    That is where a resumed fit stands, and Lightning iterates a resumed loader before it
    calls ``set_epoch``. Under DDP Lightning rebuilds the loader from these arguments around
    a ``DistributedSamplerWrapper`` (which shuffles the batch order by its own epoch): the
    epoch is set on that wrapper too, and the skip counts this rank's batches.
    """

    def __init__(self, *args, start_epoch: int = 0, start_batch: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.start_epoch, self.start_batch = start_epoch, start_batch  # attributes: what a rebuild reads
        if start_epoch and hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(start_epoch)  # the wrapper passes it on to RowBatchSampler

    # Lightning's "stateful loader" protocol. The position is not kept here: the DataModule
    # reads it from the restored loops (data_position, below) and passes
    # start_batch; saying so spares a "dataloader is not resumable" warning that is not true.
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        pass

    def __iter__(self):
        iterator = super().__iter__()
        skip, self.start_batch = self.start_batch, 0
        for _ in range(skip):  # sliced from memory: cheap, and no RNG is drawn
            next(iterator)
        return iterator


def data_position(trainer) -> tuple[int, int]:
    """``(epoch, batches already trained in it)`` where a Lightning fit stands, restored ones included.

    A fresh fit (or no trainer) is at ``(0, 0)``. After restoring a checkpoint written at the
    end of an epoch, the next epoch from its first batch; written mid-epoch (SIGTERM, every N
    steps), the same epoch after the batches it had trained.
    """
    if trainer is None:
        return 0, 0
    loop = trainer.fit_loop
    epoch = loop.epoch_progress.current.completed
    done = loop.epoch_loop.batch_progress.current.processed
    if done and loop.epoch_loop.batch_progress.is_last_batch:  # the checkpoint closed its epoch
        return epoch + 1, 0
    return epoch, done
