"""Plan memory before launch: measure the model on meta tensors and compare every strategy.

    plan = make_plan(cfg, datamodule.input_spec, datamodule.batch_size)  # what scripts/plan.py prints
    check_fits(cfg, datamodule.input_spec, datamodule.batch_size)       # what training.recipe.run checks

The model is built on ``torch.device("meta")``: shapes without storage, so a 151M-parameter
network costs nothing to count and one forward on meta tensors of the configured batch
shows what autograd keeps. A language model (``task="language_modeling"``) is counted from
its config instead (``transformer.py``). The arithmetic per strategy is in ``memory.py``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from factory.data.spec import InputSpec
from factory.distributed.memory import (GB, LAYOUTS, Budget, Buckets, Estimate, ModelSize, cheapest_fit,
                                        estimate, fmt, strategy_layout)
from factory.distributed.transformer import gpt_shape, is_language_model
from factory.errors import ConfigError


@dataclass(frozen=True)
class Plan:
    """Per-process memory of every strategy for one config, and the memory it assumes."""

    model: ModelSize
    precision: str             # what training will use: trainer.precision, or fp32 where unsupported
    devices_per_node: int
    nodes: int
    budget: Budget
    estimates: list[Estimate]  # LAYOUTS order; the configured strategy with its own settings
    chosen: Estimate | None    # None: a strategy the planner does not know
    requested_precision: str = "32-true"

    @property
    def world_size(self) -> int:
        return self.devices_per_node * self.nodes

    @property
    def candidates(self) -> list[Estimate]:
        """The strategies that run on the configured devices: ``single`` only on one device."""
        return [e for e in self.estimates if self.world_size == 1 or not e.layout.single]

    def cheapest_fit(self) -> Estimate | None:
        """The candidate that fits with the least memory per device."""
        return cheapest_fit(self.candidates, self.budget)


def make_plan(cfg: Any, spec: InputSpec | Mapping, batch_size: int | None = None) -> Plan:
    """Estimate per-device memory of ``cfg``'s model under every strategy.

    Args:
        cfg: a composed ``train`` config (``model``, ``strategy``, ``trainer``, ``plan``).
        spec: the data's ``InputSpec`` (``TabularDataModule.input_spec`` after ``setup``), a
            ``TextSpec``, or ``transformer.config_spec(cfg.data)`` (a language model planned
            without its corpus).
        batch_size: rows per process and step; default ``cfg.data.batch_size`` (the largest
            automatic size when that is null: the data is not loaded here).

    Raises:
        ConfigError: a model that cannot be built.
    """
    from factory.data.datamodule import AUTO_BATCH_ROWS

    batch_size = int(batch_size or (cfg.get("data") or {}).get("batch_size") or AUTO_BATCH_ROWS[1])
    trainer = cfg.trainer
    per_node, nodes = device_counts(trainer)
    configured = strategy_layout(cfg.strategy)  # (layout, buckets), None for a strategy we do not know
    layouts = {layout.name: (layout, Buckets()) for layout in LAYOUTS}
    if configured is not None:
        layouts[configured[0].name] = configured  # its own buckets; a non-standard mix is appended
    precision = _effective_precision(trainer)
    model = measure_model(cfg.model, spec, batch_size, cuda=_on_gpus(trainer), precision=precision)
    estimates = [estimate(model, layout, precision, per_node * nodes, buckets)
                 for layout, buckets in layouts.values()]
    chosen = next((e for e in estimates if configured and e.layout == configured[0]), None)
    return Plan(model, precision, per_node, nodes, memory_budget(_plan_settings(cfg), trainer, per_node),
                estimates, chosen, requested_precision=str(trainer.get("precision", "32-true")))


def check_fits(cfg: Any, spec: InputSpec | Mapping, batch_size: int | None = None) -> Plan | None:
    """Stop before launch when the configured strategy cannot fit in device memory.

    Returns:
        The plan, or ``None`` when ``plan.check`` is false.

    Raises:
        ConfigError: one line naming what the strategy needs, what is usable, and the
            cheapest strategy that fits (or that none does).
    """
    if not _plan_settings(cfg)["check"]:
        return None
    plan = make_plan(cfg, spec, batch_size)
    if plan.chosen is None or plan.budget.fits(plan.chosen):
        return plan
    raise ConfigError(refusal(plan))


def refusal(plan: Plan) -> str:
    """Why the configured strategy does not fit, and what would, in one line."""
    chosen, budget = plan.chosen, plan.budget
    assert chosen is not None
    if budget.shared or budget.need(chosen) > budget.device:
        what = (f"strategy={chosen.layout.name} needs ~{fmt(budget.need(chosen))} per device, "
                f"{fmt(budget.device)} usable ({budget.source} x plan.headroom={budget.headroom:g})")
    else:
        what = (f"strategy={chosen.layout.name} needs ~{fmt(chosen.host)} of host memory per process, "
                f"{fmt(budget.host)} usable (host RAM / {plan.devices_per_node} devices "
                f"x plan.headroom={budget.headroom:g})")
    best = plan.cheapest_fit()
    if best is not None:
        return f"{what}; strategy={best.layout.name} fits at ~{fmt(budget.need(best))}, or set plan.check=false"
    least = min(plan.candidates, key=budget.need)
    return (f"{what}; no strategy fits on {plan.world_size} device(s) (the least, "
            f"strategy={least.layout.name}, needs ~{fmt(budget.need(least))}): add devices "
            "(trainer.devices, trainer.num_nodes), lower data.batch_size, or set plan.check=false")


def measure_model(model_cfg: Any, spec: InputSpec | Mapping, batch_size: int, cuda: bool = False,
                  precision: str = "32-true") -> ModelSize:
    """Parameter count, largest layer and activation bytes of the configured model, on meta tensors.

    The model is built as ``training.recipe.run`` builds it (``configure_model`` included), but
    on the meta device: no memory is allocated and no arithmetic runs. A language model is
    counted from ``model.net`` and the spec (``transformer.gpt_shape``); ``cuda`` says whether
    its attention runs a fused kernel even with dropout, ``precision`` whether its loss is the
    only fp32 part of 16-bit activations.
    """
    if is_language_model(spec):
        shape = gpt_shape(model_cfg.net, spec)
        fused = cuda or shape.dropout == 0  # torch's CPU flash kernel does not do dropout
        half = str(precision).startswith(("16", "bf16"))
        return ModelSize(shape.parameters(), shape.largest_layer(),
                         int(shape.activation_bytes(batch_size, fused, half)), batch_size, block_size=shape.block_size)
    import torch

    from factory.config.instantiate import build

    spec = spec if isinstance(spec, InputSpec) else InputSpec(**dict(spec))
    with torch.device("meta"):
        module = build(model_cfg, "model", spec=spec.to_dict())
        if hasattr(module, "configure_model"):
            module.configure_model()
    params = sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())  # shared once
    largest = max((sum(p.numel() for p in m.parameters(recurse=False)) for m in module.modules()), default=0)
    activations = _activation_bytes(module, spec, batch_size)
    return ModelSize(params, largest, activations or 0, batch_size, activations is not None)


def _activation_bytes(module: Any, spec: InputSpec, batch_size: int) -> int | None:
    """Bytes one training step keeps for backward, from a forward on meta tensors.

    Every op saves what its backward needs (a Linear and a GELU their inputs, a LayerNorm
    its input and statistics); that, not the sum of layer outputs, is what training holds
    beyond the weights. Counting the tensors autograd saves is exact for the forward and
    sees activation checkpointing, whose blocks save only their inputs. Backward then
    holds, beside them, the gradient reaching a layer and the one it passes on: we add
    two of the largest saved tensors for that. ``None`` when the forward cannot run on
    meta tensors (data-dependent ops).
    """
    import torch

    weights = {t.untyped_storage()._cdata for t in [*module.parameters(), *module.buffers()]}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()  # keyed by storage: views and re-saves count once
        if storage._cdata not in weights:
            saved[storage._cdata] = storage.nbytes()
        return tensor

    rows = (batch_size, *spec.image_shape) if spec.image_shape else (batch_size, spec.n_numeric)
    x_num = torch.zeros(rows, device="meta")  # (B, n_numeric) or (B, C, H, W)
    x_cat = torch.zeros(batch_size, len(spec.embed_cardinalities), dtype=torch.long, device="meta")  # (B, n_cat)
    module.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            module(x_num, x_cat)
    except Exception:  # noqa: BLE001: a model meta tensors cannot run is planned without activations
        return None
    return sum(saved.values()) + 2 * max(saved.values(), default=0)


def device_counts(trainer: Any) -> tuple[int, int]:
    """``(devices per node, nodes)`` from ``trainer.devices`` and ``trainer.num_nodes``."""
    devices, nodes = trainer.get("devices", 1), int(trainer.get("num_nodes", 1) or 1)
    if not isinstance(devices, (int, str)):
        return len(devices), nodes  # a list of device indices
    text = str(devices).strip()
    if "," in text:
        return len([d for d in text.split(",") if d.strip()]), nodes
    if text in ("auto", "-1"):  # every GPU; on CPU, auto is one process
        return _gpu_count(trainer) or (1 if text == "auto" else os.cpu_count() or 1), nodes
    return max(int(text), 1), nodes


def memory_budget(settings: Mapping, trainer: Any, devices_per_node: int) -> Budget:
    """Memory per process: ``plan.device_memory_gb``, else the local GPU's, else host RAM / devices.

    Host RAM (what offloaded states use, and the devices when they are CPUs) is
    ``plan.host_memory_gb`` per node when set, else this machine's.

    Raises:
        ConfigError: GPUs asked for, none here, and no ``plan.device_memory_gb``.
    """
    # Their ranges (PlanConf) were checked with the config: every caller plans a validated one.
    headroom, gb = float(settings["headroom"]), settings["device_memory_gb"]
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if settings.get("host_memory_gb") is not None:  # planning for another machine's RAM (offload)
        ram = float(settings["host_memory_gb"]) * GB
    host, gpus = ram / devices_per_node, _on_gpus(trainer)
    if gb is not None:
        total, source = float(gb) * GB, f"plan.device_memory_gb={gb:g}"
    elif gpus and _gpu_count(trainer):
        import torch

        properties = torch.cuda.get_device_properties(0)
        total = float(properties.total_memory)
        source = f"GPU 0: {properties.name}, {fmt(total)}"
    elif gpus:
        raise ConfigError(f"plan.device_memory_gb: trainer.accelerator={trainer.accelerator} but no CUDA "
                          "device here; set the memory of the GPUs to plan for")
    else:
        total, source = host, f"host RAM {fmt(ram)} / {devices_per_node} device(s)"
    return Budget(total, host, shared=not gpus, source=source, headroom=headroom)


def _on_gpus(trainer: Any) -> bool:
    """Whether the devices are GPUs: asked for by name (plannable from a laptop), or found by auto."""
    return str(trainer.get("accelerator", "auto")) in ("gpu", "cuda") or _gpu_count(trainer) > 0


def _gpu_count(trainer: Any) -> int:
    """Local CUDA devices the trainer would use: none when ``trainer.accelerator`` names another."""
    import torch

    from factory.distributed.precision import uses_cuda

    return torch.cuda.device_count() if uses_cuda(trainer) else 0


def _effective_precision(trainer: Any) -> str:
    """``trainer.precision`` as training will run it: fp32 where the hardware lacks it.

    Quietly: ``build_trainer`` warns about the fallback once, at launch.
    """
    from factory.distributed import precision as hardware

    configured = trainer.get("precision", "32-true")
    if _on_gpus(trainer) and not _gpu_count(trainer):
        return str(configured)  # planning for GPUs elsewhere: take the precision as given
    quiet, hardware.log.disabled = hardware.log.disabled, True
    try:
        return hardware.supported_precision(configured, use_cuda=_on_gpus(trainer))
    finally:
        hardware.log.disabled = quiet


def _plan_settings(cfg: Any) -> dict:
    """``cfg.plan`` over ``PlanConf``'s defaults: configs composed before ``plan:`` existed still plan.

    Each value is checked against its field's range (``check_argument``): a config planned from
    Python (a benchmark, a notebook) may not have been validated.
    """
    import dataclasses

    from factory.config.ranges import check_argument
    from factory.config.schemas import PlanConf

    node = cfg.get("plan") or {}
    settings = {f.name: node.get(f.name, f.default) for f in dataclasses.fields(PlanConf)}
    for name, value in settings.items():
        if value is not None and not isinstance(value, bool):
            check_argument(PlanConf, name, value, f"plan.{name}", ConfigError)
    return settings


def print_plan(plan: Plan, console: Any = None, deepspeed: bool = True) -> None:
    """Print one row per strategy (the configured one marked) and which is cheapest that fits.

    Args:
        plan: from ``make_plan``.
        console: a ``rich.console.Console``; default stdout, at least 140 columns wide.
        deepspeed: add DeepSpeed's own estimates beside ours (imports DeepSpeed).
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from factory.distributed.memory import deepspeed_estimate

    model, budget = plan.model, plan.budget
    # DeepSpeed announces its accelerator on import: let that line come before the plan.
    ds = {e.layout: deepspeed_estimate(model, e.layout, plan.devices_per_node, plan.nodes) if deepspeed
          else None for e in plan.estimates}
    console = console or Console(width=max(Console().width, 140))
    largest = max(budget.need(e) for e in plan.estimates)
    unit, size = next(((u, s) for u, s in (("GB", GB), ("MB", 1e6)) if largest >= s), ("kB", 1e3))
    console.print(f"model: {model.params:,} parameters (largest layer {model.largest_layer:,}), "
                  f"batch {model.batch_size}"
                  + (f" x {model.block_size} tokens" if model.block_size else "")
                  + f" per device, precision {plan.precision}"
                  + ("" if plan.precision == plan.requested_precision else
                     f" (trainer.precision={plan.requested_precision} is not supported here)"),
                  highlight=False, soft_wrap=True)
    console.print(f"devices: {plan.devices_per_node} per node x {plan.nodes} node(s); memory per device: "
                  f"{fmt(budget.device)} usable ({budget.source} x plan.headroom={budget.headroom:g})",
                  highlight=False, soft_wrap=True)
    table = Table(box=box.SIMPLE_HEAD, title=f"memory per process, {unit}", title_justify="left")
    table.add_column("strategy", no_wrap=True)
    for column in ("params", "grads", "optimizer", "activations", "buffers", "step", "total/device", "host",
                   "DeepSpeed est.", "fits"):
        table.add_column(column, justify="right", no_wrap=True)
    for e in plan.estimates:
        name = e.layout.name + (" (1 device)" if e.world_size < plan.world_size else "")
        values = (e.params, e.grads, e.optimizer, e.activations, e.buffers, e.step, budget.need(e), e.host)
        estimate_ds = ds[e.layout]
        table.add_row(("* " if e is plan.chosen else "  ") + name, *(f"{v / size:.2f}" for v in values),
                      f"{estimate_ds[0] / size:.2f} | {estimate_ds[1] / size:.2f}" if estimate_ds else "-",
                      "yes" if budget.fits(e) else "no", style="bold" if e is plan.chosen else None)
    console.print(table)
    notes = ["* configured. step: temporaries of the optimizer step. total/device: what one process needs for a "
             "training step"
             + (" (the devices are CPUs: host memory is the same RAM, so offloaded states count)"
                if budget.shared else "") + "; host: offloaded states per process.",
             "DeepSpeed est.: DeepSpeed's estimate_zero2/zero3_model_states_mem_needs, per device | host per "
             "node: model states only, for 16-bit mixed precision."]
    if not model.activations_measured:
        notes.append("activations: not measured (the model's forward does not run on meta tensors).")
    if model.block_size:
        notes.append("activations: a GPT's, counted per token and layer from its config (factory.distributed."
                     "transformer; docs/planner.md, Language models); not sharded: each device runs its own batch.")
    if plan.chosen is not None:
        notes.append(f"strategy={plan.chosen.layout.name} fits: ~{fmt(budget.need(plan.chosen))} per device."
                     if budget.fits(plan.chosen) else refusal(plan).split("; ")[0] + ".")
    best = plan.cheapest_fit()
    notes.append(f"cheapest that fits: strategy={best.layout.name} (~{fmt(budget.need(best))} per device)"
                 if best else f"no strategy fits on {plan.world_size} device(s)")
    for note in notes:
        console.print(note, highlight=False, soft_wrap=True)
