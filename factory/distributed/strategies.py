"""Strategy builders: the same config on CPU (gloo) and CUDA (nccl)."""
from __future__ import annotations

from typing import Any


def single_device() -> str:
    """One process on one device; Lightning picks the CPU or the GPU."""
    return "auto"


def ddp(process_group_backend: str | None = None, find_unused_parameters: bool = False) -> Any:
    """Data parallel across ``trainer.devices`` processes (and ``trainer.num_nodes`` nodes).

    Args:
        process_group_backend: ``None`` lets Lightning choose: nccl on CUDA, gloo on CPU.
        find_unused_parameters: only for models that skip parameters in some steps.
    """
    from pytorch_lightning.strategies import DDPStrategy

    return DDPStrategy(process_group_backend=process_group_backend,
                       find_unused_parameters=find_unused_parameters)
