"""Strategy builders: the same config on CPU (gloo) and CUDA (nccl)."""
from __future__ import annotations

from typing import Any

import torch


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


def deepspeed_zero(stage: int = 2, offload_optimizer: bool = False, offload_parameters: bool = False,
                   allgather_bucket_size: float = 5e7, reduce_bucket_size: float = 1e7,
                   stage3_prefetch_bucket_size: float = 5e7, stage3_max_live_parameters: float = 1e8,
                   stage3_param_persistence_threshold: float = 1e5, pin_memory: bool = False,
                   process_group_backend: str | None = None,
                   deepspeed_config: dict | None = None) -> Any:
    """DeepSpeed ZeRO ``stage`` (1, 2, 3), optionally offloading to CPU, on CUDA or CPU.

    Args:
        stage: 1 shards optimizer states, 2 also gradients, 3 also parameters.
        offload_optimizer: keep optimizer states (and the step) on the CPU (stage 2, 3).
        offload_parameters: keep parameters on the CPU between uses (stage 3 only).
        allgather_bucket_size, reduce_bucket_size: elements per communication bucket;
            smaller buckets lower peak memory, larger ones lower the number of calls. ZeRO-3
            allocates its reduce bucket whole (1e7 fp32 elements: 40 MB); ZeRO-1/2 gather in
            place, so ``allgather_bucket_size`` costs little memory (and ZeRO-3 ignores it).
        stage3_prefetch_bucket_size, stage3_max_live_parameters,
        stage3_param_persistence_threshold: how many parameters ZeRO-3 gathers ahead, keeps
            gathered, and never shards (small tensors).
        pin_memory: page-locked offload buffers (CUDA only: faster copies, more host memory).
        process_group_backend: ``None``: nccl on CUDA, gloo on CPU.
        deepspeed_config: a raw DeepSpeed config merged over the generated one.
    """
    from factory.distributed.deepspeed import AnyDeviceDeepSpeedStrategy, merge, zero_config

    if stage not in (1, 2, 3):
        raise ValueError(f"strategy.stage must be 1, 2 or 3, got {stage}")
    config = {
        "zero_optimization": zero_config(stage, offload_optimizer, offload_parameters, allgather_bucket_size,
                                         reduce_bucket_size, stage3_prefetch_bucket_size,
                                         stage3_max_live_parameters, stage3_param_persistence_threshold,
                                         pin_memory),
        "zero_allow_untested_optimizer": True,
    }
    if offload_optimizer:
        # Lets the torch AdamW fallback of factory.distributed.cpu_adam run where CPU Adam can't build.
        config["zero_force_ds_cpu_optimizer"] = False
    if deepspeed_config:
        config = merge(config, deepspeed_config)
    # Build native ops here, in the launching process, with a message, rather than
    # silently inside every worker (which would each wait on the build lock).
    from factory.distributed.native_ops import NativeOpError, ensure_built, use_environment_cache

    use_environment_cache()  # before the workers start: they inherit TORCH_EXTENSIONS_DIR
    if not torch.cuda.is_available():
        ensure_built("deepspeed_shm_comm")
    if offload_optimizer:
        try:
            ensure_built("cpu_adam")
        except NativeOpError:
            pass  # factory.distributed.cpu_adam warns and falls back to torch's AdamW
    return AnyDeviceDeepSpeedStrategy(config=config, process_group_backend=process_group_backend)
