"""Precision that the hardware can run: the same config on a GPU node and on a laptop CPU."""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

HALF = {"16", "16-mixed", "16-true", "bf16", "bf16-mixed", "bf16-true"}


def uses_cuda(trainer_cfg) -> bool:
    """Whether the Trainer will run on CUDA GPUs (``auto`` picks them when present)."""
    import torch

    return trainer_cfg.get("accelerator", "auto") in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); elsewhere it is emulated."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.exists() else ""
    flags = set(cpuinfo.split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def supported_precision(precision: str | int, use_cuda: bool, cpuinfo: str | None = None) -> str:
    """``precision`` if the hardware supports it, else ``"32-true"`` with one warning line.

    fp16 needs a GPU (DeepSpeed's CPU accelerator refuses it); bf16 needs a GPU that has it
    or a CPU with native bf16 (emulated bf16 ran ~2.3x slower than fp32 on AVX2 here).
    """
    precision = str(precision)
    if precision not in HALF:
        return precision
    if use_cuda:
        import torch

        if precision.startswith("bf16") and not torch.cuda.is_bf16_supported():
            return _fall_back(precision, "this GPU has no bf16")
        return precision
    if precision.startswith("bf16") and cpu_has_native_bf16(cpuinfo):
        return precision
    reason = "fp16 needs a GPU" if not precision.startswith("bf16") else "this CPU has no native bf16"
    return _fall_back(precision, reason)


def _fall_back(precision: str, reason: str) -> str:
    log.warning("trainer.precision=%s: %s; training in fp32 (32-true) instead", precision, reason)
    return "32-true"
