"""Strategy construction (single device, DDP; DeepSpeed next) for CPU and CUDA alike."""
from factory.distributed.strategies import ddp, single_device

__all__ = ["ddp", "single_device"]
