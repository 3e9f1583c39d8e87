"""Per-device memory of a training step under each strategy: the arithmetic, nothing else.

Functions of a parameter count, a precision and a world size, checkable by hand; torch
and DeepSpeed load only inside ``strategy_layout`` and ``deepspeed_estimate``.
``factory.distributed.planner`` measures the model and reads the rest of the config.

Bytes are decimal (1 GB = 1e9 B). For ``P`` parameters on ``N`` processes in fp32 with
AdamW (4 B weights, 4 B gradients, 8 B for the two moments):

    strategy         params   grads    optimizer      buffers (communication)                 step
    single / ddp     4P       4P       8P             ddp: 4P (the reducer's gradient buckets)  8L
    deepspeed_zero1  4P       4P       (8 + 4)P / N   4 x reduce_bucket_size                   12P / N
    deepspeed_zero2  4P       4P / N   (8 + 4)P / N   4 x reduce_bucket_size                   12P / N
    deepspeed_zero3  4P / N   4P / N   8P / N         4 x (reduce_bucket_size + gathered)       12 x sub-group

ZeRO-1/2 update a cloned fp32 partition of the weights (the ``+ 4``) even in fp32;
ZeRO-3 updates its fp32 shard in place, unless offloaded. step: what the optimizer step
allocates on top, for a moment. AdamW's elementwise update makes two temporaries the size
of the tensor it steps (``sqrt`` of the second moment, then the denominator); ZeRO steps
its flat partition, or under ZeRO-3 one sub-group of it, and first copies the gradients
into one more flat tensor of that size. DDP steps layer by layer (``L``: the largest
layer); torch's foreach path on CUDA holds more. Offload moves the optimizer states, that fp32
copy and the fp32 gradient partition to host memory (and, for ``zero3_offload``, the
parameter shards and a second, gradient-accumulation partition too); the device keeps
only what a step gathers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

GB = 1e9


@dataclass(frozen=True)
class Precision:
    """Bytes per parameter (and per activation element) of each state under one precision."""

    param: int       # weights as the model holds them
    grad: int
    optimizer: int   # AdamW's two moments
    master: int      # an fp32 copy of the weights the optimizer updates
    activation: int  # bytes per saved activation element


FP32 = Precision(param=4, grad=4, optimizer=8, master=0, activation=4)
FP64 = Precision(param=8, grad=8, optimizer=16, master=0, activation=8)
HALF = Precision(param=2, grad=2, optimizer=4, master=0, activation=2)  # "bf16-true": every state in 16 bits
# "16-mixed" under torch autocast (single, ddp): fp32 weights and states, 16-bit activations.
AUTOCAST = Precision(param=4, grad=4, optimizer=8, master=0, activation=2)
# Any 16-bit precision under DeepSpeed: 16-bit weights and gradients, fp32 master copy and moments.
DEEPSPEED_MIXED = Precision(param=2, grad=2, optimizer=8, master=4, activation=2)


def precision_bytes(precision: str | int, deepspeed: bool) -> Precision:
    """The byte sizes a Lightning ``trainer.precision`` value implies.

    Args:
        precision: ``32-true``, ``bf16-mixed``, ``16-true``, ``64``, ...; unknown values
            count as fp32.
        deepspeed: whether DeepSpeed trains the model (it keeps mixed-precision weights in
            16 bits; torch autocast keeps them in fp32).
    """
    text = str(precision)
    if text.startswith("64"):
        return FP64
    if not text.startswith(("16", "bf16", "transformer-engine")):
        return FP32
    if deepspeed:  # DeepSpeed's fp16/bf16 modes always step an fp32 master copy
        return DEEPSPEED_MIXED
    return HALF if text.endswith("-true") else AUTOCAST


@dataclass(frozen=True)
class Layout:
    """How a strategy places model states: which are sharded, which live on the host."""

    name: str                     # the conf/strategy option: strategy=<name>
    stage: int                    # 0: every process holds everything; 1-3: the ZeRO stage
    offload_optimizer: bool = False
    offload_params: bool = False  # stage 3 only

    @property
    def single(self) -> bool:
        return self.name == "single"


#: Every strategy the planner compares, least sharded first (ties go to the earlier one).
LAYOUTS: tuple[Layout, ...] = (
    Layout("single", 0),
    Layout("ddp", 0),
    Layout("deepspeed_zero1", 1),
    Layout("deepspeed_zero2", 2),
    Layout("deepspeed_zero2_offload", 2, offload_optimizer=True),
    Layout("deepspeed_zero3", 3),
    Layout("deepspeed_zero3_offload", 3, offload_optimizer=True, offload_params=True),
)


@dataclass(frozen=True)
class Buckets:
    """Communication buffer sizes, in elements (``factory.distributed.deepspeed_zero``'s defaults)."""

    reduce: float = 1e7      # gradients reduced per call
    prefetch: float = 5e7    # ZeRO-3: parameters gathered ahead of use
    max_live: float = 1e8    # ZeRO-3: gathered parameters kept before release
    sub_group: float = 1e7   # ZeRO-3: partition elements the optimizer steps at once


def strategy_layout(strategy: Any) -> tuple[Layout, Buckets] | None:
    """The layout and buffer sizes a ``strategy`` config node builds; ``None`` for other targets."""
    target = strategy.get("_target_")
    if target == "factory.distributed.single_device":
        return LAYOUTS[0], Buckets()
    if target == "factory.distributed.ddp":
        return LAYOUTS[1], Buckets()
    if target != "factory.distributed.deepspeed_zero":
        return None
    from omegaconf import OmegaConf

    from factory.config.schemas import DeepSpeedZeroConf
    from factory.distributed.deepspeed import merge, zero_config

    # The zero_optimization block exactly as the strategy builds it, raw overrides included.
    settings = {**vars(DeepSpeedZeroConf()), **OmegaConf.to_container(strategy, resolve=True)}
    block = zero_config(*(settings[k] for k in (
        "stage", "offload_optimizer", "offload_parameters", "allgather_bucket_size", "reduce_bucket_size",
        "stage3_prefetch_bucket_size", "stage3_max_live_parameters", "stage3_param_persistence_threshold",
        "pin_memory")))
    block = merge(block, (settings.get("deepspeed_config") or {}).get("zero_optimization") or {})
    stage = int(block["stage"])
    offload_optimizer = _offloaded(block.get("offload_optimizer"))
    offload_params = stage == 3 and _offloaded(block.get("offload_param"))
    name = f"deepspeed_zero{stage}"
    if (stage, offload_optimizer, offload_params) in ((2, True, False), (3, True, True)):
        name += "_offload"  # the conf/strategy options
    else:
        name += "+offload_optimizer" * offload_optimizer + "+offload_parameters" * offload_params
    buckets = Buckets(reduce=float(block["reduce_bucket_size"]),
                      prefetch=float(block.get("stage3_prefetch_bucket_size", Buckets.prefetch)),
                      max_live=float(block.get("stage3_max_live_parameters", Buckets.max_live)),
                      sub_group=float(block.get("sub_group_size", Buckets.sub_group)))
    return Layout(name, stage, offload_optimizer, offload_params), buckets


def _offloaded(node: Any) -> bool:
    return isinstance(node, Mapping) and node.get("device") in ("cpu", "nvme")


@dataclass(frozen=True)
class ModelSize:
    """What the planner measured about the model for the configured batch."""

    params: int
    largest_layer: int     # most parameters held directly by one module (ZeRO-3 gathers it whole)
    activations: int       # bytes one fp32 training step keeps for backward, for one process's batch
    batch_size: int = 0
    activations_measured: bool = True  # False: the forward could not run on meta tensors
    block_size: int = 0    # a language model's tokens per window (its batch is batch_size x block_size tokens)


@dataclass(frozen=True)
class Estimate:
    """Bytes per process of one strategy: on its device, and in host memory."""

    layout: Layout
    world_size: int
    params: float
    grads: float
    optimizer: float
    activations: float
    buffers: float
    host: float = 0.0  # offloaded states, per process
    step: float = 0.0  # temporaries of the optimizer step (flattened gradients, AdamW's intermediates)

    @property
    def device(self) -> float:
        return self.params + self.grads + self.optimizer + self.activations + self.buffers + self.step


def estimate(model: ModelSize, layout: Layout, precision: str | int = "32-true", world_size: int = 1,
             buckets: Buckets = Buckets()) -> Estimate:
    """Per-process memory of ``model`` trained with ``layout`` on ``world_size`` processes.

    Args:
        model: parameter count, largest layer and activation bytes (fp32).
        layout: the strategy; ``single`` always runs on one process.
        precision: the trainer's precision.
        world_size: processes in all (devices per node x nodes).
        buckets: communication buffer sizes of the strategy.

    Returns:
        Bytes per process of parameters, gradients, optimizer states (with any fp32 master
        copy), activations, communication buffers and the optimizer step's temporaries on
        the device, and offloaded bytes on the host.

    Example:
        >>> e = estimate(ModelSize(1_000_000, 0, 0), LAYOUTS[1], "32-true", world_size=4)  # ddp
        >>> (e.params, e.grads, e.optimizer, e.buffers)
        (4000000.0, 4000000.0, 8000000.0, 4000000.0)
    """
    n = 1 if layout.single else world_size
    stage, p = layout.stage, float(model.params)
    b = precision_bytes(precision, deepspeed=stage > 0)
    # ZeRO-1/2 and offload always step a cloned fp32 partition; ZeRO-3 steps its shard in place.
    master = max(b.master, 4) if stage in (1, 2) or layout.offload_optimizer else b.master
    params = p * b.param / (n if stage == 3 else 1)
    grads = p * b.grad / (n if stage >= 2 else 1)
    optimizer = p * (b.optimizer + master) / (n if stage >= 1 else 1)
    host = 0.0
    if layout.offload_optimizer:
        host += optimizer + p * 4 / n  # states, fp32 copy and the fp32 gradient partition
        if stage == 3:  # and ZeRO-3's gradient-accumulation partition, also on the host
            host += grads
        optimizer = 0.0
        if stage >= 2:
            grads = 0.0  # reduced straight from the bucket to the host partition
    if layout.offload_params:
        host += params
        params = 0.0
    return Estimate(layout, n, params, grads, optimizer, model.activations * b.activation / 4,
                    _buffers(layout, b, p, model.largest_layer, buckets), host,
                    _step(layout, b, p, model.largest_layer, n, buckets))


def _step(layout: Layout, b: Precision, p: float, largest_layer: int, n: int, buckets: Buckets) -> float:
    """Temporaries of one optimizer step: AdamW's two intermediates and ZeRO's flat gradient copy.

    Measured on CPU (docs/benchmarks.md): a flat ZeRO-1/2 partition of 75M fp32 elements
    added 0.9 GB at the step, a ZeRO-3 sub-group of 1e7 elements 0.14 GB, DDP 0.14 GB.
    Offloaded steps run DeepSpeed's CPU Adam in place, on gradients already on the host.
    """
    if layout.offload_optimizer:
        return 0.0
    if layout.stage == 0:
        return 2 * b.param * largest_layer  # torch's AdamW steps one tensor at a time on CPU
    width = max(b.master, b.param)  # ZeRO steps in the master dtype (fp32 unless fp64)
    # ZeRO-3 closes a sub-group once it reaches sub_group elements: at most one layer's shard more.
    stepped = p / n if layout.stage < 3 else min(p / n, buckets.sub_group + largest_layer / n)
    return 3 * width * stepped  # the flat gradient copy, sqrt(v), the denominator


def _buffers(layout: Layout, b: Precision, p: float, largest_layer: int, buckets: Buckets) -> float:
    """Communication buffers per process."""
    if layout.stage == 0:
        # DDP copies every gradient into flat buckets (gradient_as_bucket_view=False).
        return 0.0 if layout.single else p * b.grad
    # DeepSpeed allocates the gradient reduction bucket whole, however small the model.
    reduce = buckets.reduce * b.grad
    if layout.stage < 3:
        return reduce  # ZeRO-1/2 all-gather updated weights in place, into the flat parameter buffer
    # ZeRO-3 gathers whole layers and releases each after use: the one being computed plus
    # what is prefetched, within max_live (measured here: no layer stays gathered after use).
    gathered = min(largest_layer + buckets.prefetch, max(buckets.max_live, largest_layer), p)
    return reduce + gathered * b.param


@dataclass(frozen=True)
class Budget:
    """Memory per process, and the fraction of it a plan may use."""

    device_total: float
    host_total: float
    shared: bool          # the devices are CPUs: device and host memory are one pool
    source: str           # where device_total came from: "plan.device_memory_gb=4", "host RAM ..."
    headroom: float = 1.0  # the rest is for the framework, the data and fragmentation

    @property
    def device(self) -> float:
        return self.device_total * self.headroom

    @property
    def host(self) -> float:
        return self.host_total * self.headroom

    def need(self, e: Estimate) -> float:
        """What ``e`` takes from the device pool (host included when they are the same memory)."""
        return e.device + e.host if self.shared else e.device

    def fits(self, e: Estimate) -> bool:
        return self.need(e) <= self.device and (self.shared or e.host <= self.host)


def cheapest_fit(estimates: list[Estimate], budget: Budget, tolerance: float = 0.02) -> Estimate | None:
    """The estimate that fits with the least memory; within ``tolerance`` of it, the first.

    ``LAYOUTS`` lists the least sharded first, so near-ties go to the faster strategy
    (ZeRO-2 over a ZeRO-3 whose gathered layers cost what its sharding saved).
    """
    fitting = [e for e in estimates if budget.fits(e)]
    if not fitting:
        return None
    least = min(budget.need(e) for e in fitting)
    return next(e for e in fitting if budget.need(e) <= least * (1 + tolerance))


def deepspeed_estimate(model: ModelSize, layout: Layout, devices_per_node: int,
                       nodes: int) -> tuple[int, int] | None:
    """DeepSpeed's own estimate of model states, for ZeRO layouts: ``(device, host per node)``.

    Calls ``estimate_zero2_model_states_mem_needs`` (stages 1 and 2) and
    ``estimate_zero3_model_states_mem_needs`` (``zero_init=True``, as Lightning builds
    ZeRO-3 models). DeepSpeed assumes 16-bit mixed precision and a 1.5x host buffer
    factor, and leaves out activations and communication buffers. Imports DeepSpeed.

    Returns:
        ``None`` for ``single``/``ddp`` or when DeepSpeed is not installed.
    """
    if layout.stage == 0:
        return None
    try:
        if layout.stage < 3:
            from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

            host, device = estimate_zero2_model_states_mem_needs(
                model.params, devices_per_node, nodes, cpu_offload=layout.offload_optimizer)
        else:
            from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

            host, device, _ = estimate_zero3_model_states_mem_needs(
                model.params, model.largest_layer, devices_per_node, nodes,
                cpu_offload=layout.offload_optimizer, cpu_offload_params=layout.offload_params, zero_init=True)
    except ImportError:
        return None
    return int(device), int(host)


def fmt(n: float) -> str:
    """Bytes in decimal units: ``2.42 GB``, ``605.2 MB``."""
    for unit, size in (("GB", GB), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}" if unit == "GB" else f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"
