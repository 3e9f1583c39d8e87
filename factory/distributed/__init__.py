"""Strategy construction (single device, DDP, DeepSpeed ZeRO) for CPU and CUDA alike."""
from factory.distributed.offload import cpu_adam
from factory.distributed.strategies import ddp, deepspeed_zero, single_device

__all__ = ["cpu_adam", "ddp", "deepspeed_zero", "single_device"]
