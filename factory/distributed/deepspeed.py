"""DeepSpeed ZeRO for Lightning on CUDA (nccl) and on CPU (DeepSpeed's CPU accelerator, gloo).

Lightning's ``DeepSpeedStrategy`` refuses non-CUDA accelerators and hands DeepSpeed the
root device's index as its ``device_rank``; CPU devices have no index. Indexing the CPU
"devices" 0..n-1 (torch treats ``cpu:1`` as ``cpu``) gives both Lightning's device check
and DeepSpeed's engine the local rank; everything else (checkpoint directories, resume,
consolidation) is Lightning's own code.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from pytorch_lightning.accelerators import CUDAAccelerator
from pytorch_lightning.strategies import DDPStrategy, DeepSpeedStrategy


class AnyDeviceDeepSpeedStrategy(DeepSpeedStrategy):
    """``DeepSpeedStrategy`` that also runs on CPU processes; unchanged on CUDA."""

    strategy_name = "factory_deepspeed"

    def setup_environment(self) -> None:
        if isinstance(self.accelerator, CUDAAccelerator):
            super().setup_environment()
            return
        self.parallel_devices = [torch.device("cpu", i) for i in range(len(self.parallel_devices))]
        DDPStrategy.setup_environment(self)  # everything but the CUDA-only check

    def _auto_select_batch_size(self) -> int:
        # factory's loaders slice whole batches (no batch_sampler); the datamodule knows the size.
        datamodule = self.lightning_module.trainer.datamodule
        return int(getattr(datamodule, "batch_size", 0) or 1)


def zero_config(stage: int, offload_optimizer: bool, offload_parameters: bool,
                allgather_bucket_size: int, reduce_bucket_size: int,
                stage3_prefetch_bucket_size: int, stage3_max_live_parameters: int,
                stage3_param_persistence_threshold: int, pin_memory: bool) -> dict[str, Any]:
    """The ``zero_optimization`` block of a DeepSpeed config for one stage."""
    block: dict[str, Any] = {
        "stage": stage,
        "contiguous_gradients": True,
        "overlap_comm": False,  # overlapping only pays with a GPU's side streams
        "allgather_bucket_size": int(allgather_bucket_size),
        "reduce_bucket_size": int(reduce_bucket_size),
    }
    if offload_optimizer:
        block["offload_optimizer"] = {"device": "cpu", "pin_memory": pin_memory}
    if stage == 3:
        block.update({
            "stage3_prefetch_bucket_size": int(stage3_prefetch_bucket_size),
            "stage3_max_live_parameters": int(stage3_max_live_parameters),
            "stage3_param_persistence_threshold": int(stage3_param_persistence_threshold),
        })
        if offload_parameters:
            block["offload_param"] = {"device": "cpu", "pin_memory": pin_memory}
    return block


def merge(base: dict, override: Mapping) -> dict:
    """``override`` merged over ``base`` recursively (the raw ``deepspeed_config`` escape hatch)."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = merge(merged[key], value) if isinstance(value, Mapping) and isinstance(
            merged.get(key), Mapping) else value
    return merged
