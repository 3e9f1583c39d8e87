"""Strategy construction (single device, DDP; DeepSpeed next) for CPU and CUDA alike."""
from factory.distributed.strategies import ddp, deepspeed_zero, single_device

__all__ = ["ddp", "deepspeed_zero", "single_device"]
