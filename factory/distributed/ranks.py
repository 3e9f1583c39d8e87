"""What each rank holds on its own, gathered into a checkpoint and taken back by each rank.

Used by the RNG states of ``factory.training.fault_tolerance.RankState`` and by the running
epoch loss of ``factory.models.module``: below both, so neither imports the other for it.
"""
from __future__ import annotations

from typing import Any


def gather_per_rank(state: Any) -> list[Any]:
    """``[state of rank 0, state of rank 1, ...]``; call on every rank (it is collective).

    For checkpoint hooks: every rank builds the checkpoint, rank 0's copy is what is saved.
    """
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        states: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(states, state)
        return states
    return [state]


def own_state(states: list[Any], rank: int) -> Any:
    """This rank's entry of ``gather_per_rank``'s list (rank 0's if the world grew since)."""
    return states[rank] if rank < len(states) else states[0]
