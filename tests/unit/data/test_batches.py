"""Sliced batches: every row once per epoch, reshuffled per epoch, sharded across workers and ranks."""
from __future__ import annotations

import numpy as np
import torch
from lightning_fabric.utilities.distributed import DistributedSamplerWrapper

from factory.data.batches import RowBatchSampler, batch_loader

N = 23


def _tensors(n: int = N) -> tuple[torch.Tensor, ...]:
    x_num = torch.arange(n, dtype=torch.float32).unsqueeze(1).repeat(1, 3)  # row id in every column
    return x_num, torch.arange(n).unsqueeze(1), torch.arange(n, dtype=torch.float32)


def _epoch_rows(loader, epoch: int) -> list[int]:
    loader.sampler.set_epoch(epoch)
    return [int(row) for _, x_cat, _ in loader for row in x_cat[:, 0]]


def test_batches_are_aligned_tensors_of_the_right_shape():
    batches = list(batch_loader(_tensors(), 5, shuffle=True, seed=0))
    assert [len(b[0]) for b in batches] == [5, 5, 5, 5, 3]
    for x_num, x_cat, y in batches:
        assert x_num.shape[1:] == (3,) and x_num.dtype == torch.float32 and x_cat.dtype == torch.int64
        assert torch.equal(x_num[:, 0], y) and torch.equal(x_cat[:, 0].float(), y)


def test_train_order_covers_all_rows_changes_per_epoch_and_repeats_per_seed():
    loader = batch_loader(_tensors(), 5, shuffle=True, seed=7)
    first, second = _epoch_rows(loader, 0), _epoch_rows(loader, 1)
    assert sorted(first) == sorted(second) == list(range(N))
    assert first != second
    assert _epoch_rows(batch_loader(_tensors(), 5, shuffle=True, seed=7), 1) == second
    assert _epoch_rows(batch_loader(_tensors(), 5, shuffle=True, seed=8), 1) != second


def test_eval_order_is_the_row_order():
    assert _epoch_rows(batch_loader(_tensors(), 5), 3) == list(range(N))


def test_len_counts_batches_and_drop_last_drops_the_short_one():
    assert len(batch_loader(_tensors(), 5)) == 5
    loader = batch_loader(_tensors(), 5, shuffle=True, drop_last=True)
    assert len(loader) == 4 and [len(b[0]) for b in loader] == [5, 5, 5, 5]
    assert len(batch_loader(_tensors(20), 5, drop_last=True)) == 4


def test_workers_fetch_each_batch_once_and_follow_the_epoch():
    loader = batch_loader(_tensors(), 4, shuffle=True, seed=1, num_workers=2)
    assert loader.persistent_workers
    first, second = _epoch_rows(loader, 0), _epoch_rows(loader, 1)
    assert sorted(first) == sorted(second) == list(range(N)) and first != second
    assert first == _epoch_rows(batch_loader(_tensors(), 4, shuffle=True, seed=1), 0)


def test_ranks_get_disjoint_equal_shares_under_lightnings_ddp_wrapper():
    # What Lightning injects for a custom sampler when the trainer is distributed.
    sampler = RowBatchSampler(N, 4, shuffle=True, seed=0)
    shares = []
    for rank in range(2):
        wrapper = DistributedSamplerWrapper(sampler, num_replicas=2, rank=rank, shuffle=False)
        wrapper.set_epoch(1)  # forwarded to our sampler
        shares.append([batch.tolist() for batch in wrapper])
    assert sampler.epoch == 1 and len(shares[0]) == len(shares[1]) == 3  # 6 batches, 3 each
    rows = [r for share in shares for batch in share for r in batch]
    assert sorted(rows) == list(range(N))
    assert rows != sorted(rows)
    assert np.concatenate(list(sampler)).tolist() == [r for pair in zip(*shares) for b in pair for r in b]


def test_a_resumed_loader_starts_at_its_epoch_and_batch():
    uninterrupted = batch_loader(_tensors(), 5, shuffle=True, seed=7)
    epoch1 = [b[1][:, 0].tolist() for b in (uninterrupted.sampler.set_epoch(1) or uninterrupted)]
    resumed = batch_loader(_tensors(), 5, shuffle=True, seed=7, start_epoch=1, start_batch=2)
    assert [b[1][:, 0].tolist() for b in resumed] == epoch1[2:]
    assert _epoch_rows(resumed, 2) == _epoch_rows(uninterrupted, 2)  # later passes: whole epochs


def test_a_resumed_loader_rebuilt_for_ddp_continues_each_ranks_batches():
    from lightning_fabric.utilities.data import _replace_dunder_methods
    from pytorch_lightning.utilities.data import _update_dataloader
    from torch.utils.data import DataLoader

    from factory.data.batches import BatchLoader

    def requested(**start):  # as Lightning calls train_dataloader(): recording the loader's arguments
        with _replace_dunder_methods(DataLoader, "dataset"):
            return batch_loader(_tensors(), 4, shuffle=True, seed=7, **start)

    def rank_batches(loader, rank, epoch=None):
        # What Lightning does to a training loader on 2 ranks: rebuild it around its wrapper.
        wrapper = DistributedSamplerWrapper(loader.sampler, num_replicas=2, rank=rank, shuffle=True, seed=3)
        rebuilt = _update_dataloader(loader, wrapper)
        if epoch is not None:
            wrapper.set_epoch(epoch)
        return rebuilt, [b[1][:, 0].tolist() for b in rebuilt]

    for rank in range(2):
        _, uninterrupted = rank_batches(requested(), rank, epoch=2)
        rebuilt, resumed = rank_batches(requested(start_epoch=2, start_batch=1), rank)
        assert isinstance(rebuilt, BatchLoader) and rebuilt.sampler.epoch == 2
        assert resumed == uninterrupted[1:]
