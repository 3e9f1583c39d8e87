"""The optimizer for ZeRO-Offload: DeepSpeed's CPU Adam, or torch's AdamW where it can't build."""
from __future__ import annotations

import logging
from typing import Iterable

import torch

from factory.distributed.native_ops import NativeOpError, ensure_built

log = logging.getLogger(__name__)


def cpu_adam(params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
             weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """AdamW for optimizer states held on the CPU (ZeRO-Offload).

    DeepSpeed's vectorized CPU Adam is several times faster than torch's AdamW there, and
    ZeRO-Offload refuses a client optimizer unless told otherwise. When the native op
    cannot be built, torch's AdamW computes the same update (the strategy allows it with
    ``zero_force_ds_cpu_optimizer: false``), only slower: one warning says so.
    """
    try:
        ensure_built("cpu_adam", announce=log.warning)
    except NativeOpError as e:
        log.warning("%s; using torch.optim.AdamW for the offloaded step (same update, slower)", e)
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    from deepspeed.ops.adam import DeepSpeedCPUAdam

    return DeepSpeedCPUAdam(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                            adamw_mode=True)
