"""DeepSpeed ZeRO for Lightning on CUDA (nccl) and on CPU (DeepSpeed's CPU accelerator, gloo).

Lightning's ``DeepSpeedStrategy`` refuses non-CUDA accelerators and hands DeepSpeed the
root device's index as its ``device_rank``; CPU devices have no index. Indexing the CPU
"devices" 0..n-1 (torch treats ``cpu:1`` as ``cpu``) gives both Lightning's device check
and DeepSpeed's engine the local rank; everything else (checkpoint directories, resume,
consolidation) is Lightning's own code.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from pytorch_lightning.accelerators import CUDAAccelerator
from pytorch_lightning.strategies import DDPStrategy, DeepSpeedStrategy
from pytorch_lightning.trainer.states import TrainerFn


class AnyDeviceDeepSpeedStrategy(DeepSpeedStrategy):
    """``DeepSpeedStrategy`` that also runs on CPU processes; unchanged on CUDA."""

    strategy_name = "factory_deepspeed"

    def setup_environment(self) -> None:
        if isinstance(self.accelerator, CUDAAccelerator):
            super().setup_environment()
            return
        self.parallel_devices = [torch.device("cpu", i) for i in range(len(self.parallel_devices))]
        DDPStrategy.setup_environment(self)  # everything but the CUDA-only check

    def load_checkpoint(self, checkpoint_path, weights_only: bool | None = None) -> dict[str, Any]:
        # Validating or testing a ZeRO-3 directory: DeepSpeed's inference engine has no
        # optimizer to take the sharded weights. Consolidate once (rank 0, reused later by
        # load_model/export), then load full weights through Lightning's ZeRO-3 gather.
        self._full_weights_loaded = False
        fitting = self.lightning_module.trainer.state.fn == TrainerFn.FITTING
        if self.zero_stage_3 and not fitting and Path(checkpoint_path).is_dir():
            from factory.checkpoints import consolidate, consolidated_path

            target = consolidated_path(checkpoint_path)
            if self.is_global_zero and not target.is_file():
                consolidate(checkpoint_path, target)
            self.barrier("factory_consolidate")
            self._full_weights_loaded = True
            return self.checkpoint_io.load_checkpoint(target, weights_only=False)
        return super().load_checkpoint(checkpoint_path, weights_only)

    def load_model_state_dict(self, checkpoint: Mapping[str, Any], strict: bool = True) -> None:
        if getattr(self, "_full_weights_loaded", False):
            self.model_to_device()
            self._restore_zero_state(checkpoint, strict=strict)
            return
        super().load_model_state_dict(checkpoint, strict=strict)

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
