"""DeepSpeed ZeRO for Lightning on CUDA (nccl) and on CPU (DeepSpeed's CPU accelerator, gloo).

Lightning's ``DeepSpeedStrategy`` refuses non-CUDA accelerators and hands DeepSpeed the
root device's index as its ``device_rank``; CPU devices have no index. Indexing the CPU
"devices" 0..n-1 (torch treats ``cpu:1`` as ``cpu``) gives both Lightning's device check
and DeepSpeed's engine the local rank; everything else (checkpoint directories, resume,
consolidation) is Lightning's own code. As DDP does, and DeepSpeed does not, every rank
holds rank 0's buffers (``broadcast_buffers``), so metrics are those of the checkpoint.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

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

    def _setup_model_and_optimizer(self, model, optimizer, lr_scheduler=None):
        if isinstance(self.accelerator, CUDAAccelerator):
            return super()._setup_model_and_optimizer(model, optimizer, lr_scheduler)
        with shared_fp32_shards():
            return super()._setup_model_and_optimizer(model, optimizer, lr_scheduler)

    def load_checkpoint(self, checkpoint_path, weights_only: bool | None = None) -> dict[str, Any]:
        # Validating or testing a ZeRO-3 directory: DeepSpeed's inference engine has no
        # optimizer to take the sharded weights. Rank 0 consolidates beside the shards (the
        # run's own directory, which every rank on every node reads; again whenever the shards
        # were rewritten since), then full weights load through Lightning's ZeRO-3 gather.
        self._full_weights_loaded = False
        fitting = self.lightning_module.trainer.state.fn == TrainerFn.FITTING
        if self.zero_stage_3 and not fitting and Path(checkpoint_path).is_dir():
            from factory.rundir.checkpoints import consolidate, export_path, is_newer_than_shards

            target = export_path(checkpoint_path)
            if self.is_global_zero and not is_newer_than_shards(target, checkpoint_path):
                consolidate(checkpoint_path, target)  # once per state of the shards (val, then test)
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

    # Rank 0's buffers on every rank before each training batch and each evaluation, as DDP's
    # broadcast_buffers does. DeepSpeed leaves each rank its own BatchNorm statistics (each
    # rank updates them from its own batches, and ZeRO-3 loads a checkpoint's into rank 0
    # only), while checkpoints and exports hold rank 0's: metrics would not be the model's.
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_start(batch, batch_idx)
        broadcast_buffers(self.lightning_module)

    def on_validation_start(self) -> None:
        super().on_validation_start()
        broadcast_buffers(self.lightning_module)

    def on_test_start(self) -> None:
        super().on_test_start()
        broadcast_buffers(self.lightning_module)

    def on_predict_start(self) -> None:
        super().on_predict_start()
        broadcast_buffers(self.lightning_module)

    def _auto_select_batch_size(self) -> int:
        # factory's loaders slice whole batches (no batch_sampler); the datamodule knows the size.
        datamodule = self.lightning_module.trainer.datamodule
        return int(getattr(datamodule, "batch_size", 0) or 1)


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Copy rank 0's buffers of ``module`` to every rank: one broadcast per dtype and device."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for buffer in module.buffers():
        groups.setdefault((buffer.dtype, buffer.device), []).append(buffer)
    with torch.no_grad():
        for buffers in groups.values():
            flat = torch.cat([b.reshape(-1) for b in buffers])  # (total elements,)
            dist.broadcast(flat, src=0)
            for buffer, value in zip(buffers, flat.split([b.numel() for b in buffers])):
                buffer.copy_(value.view_as(buffer))


@contextmanager
def shared_fp32_shards() -> Iterator[None]:
    """ZeRO-3 in fp32 on CPU: let the optimizer step the parameter shards in place.

    DeepSpeed 0.19 keeps no separate fp32 master copy when the flat parameter shard already
    is fp32 on the optimizer's device, but tests that with ``tensor.device == "cpu"`` (a
    ``torch.device`` against a string: always False), so on CPU it clones every shard:
    4 bytes per parameter / N of memory that only mirrors the shard. While the optimizer is
    built, its device is a ``torch.device``, and DeepSpeed's own comparison holds.
    """
    from deepspeed.runtime.zero.stage3 import DeepSpeedZeroOptimizer_Stage3 as Stage3

    original = Stage3._create_fp32_partitions

    def create_fp32_partitions(self) -> None:
        device = self.device
        if type(device) is str:  # offload uses its own enum and keeps its host copy
            self.device = torch.device(device)
        try:
            original(self)
        finally:
            self.device = device

    Stage3._create_fp32_partitions = create_fp32_partitions
    try:
        yield
    finally:
        Stage3._create_fp32_partitions = original


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
            # The optimizer steps one sub-group of the shard at a time, and each step makes
            # ~3 sub-group-sized temporaries (flattened gradients, Adam's sqrt and denominator).
            # DeepSpeed's 1e9 makes the whole shard one group: +12 bytes per parameter / N at
            # the step. 1e7 elements: ~120 MB of temporaries, a few more loop turns.
            "sub_group_size": int(1e7),
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
