"""A Lightning callback that records where a rank's resident memory goes during training.

``bench/sharding.py`` injects it into ``scripts/train.py`` runs with
``+callbacks.memprobe._target_=memory_probe.MemoryProbe`` (``bench/`` on ``PYTHONPATH``);
each rank writes ``$MEMPROBE_DIR/rank<N>.json``.

Milestones, in the order training reaches them. At each one the probe notes the current
RSS and the peak RSS since the previous milestone (``VmHWM``, which it then resets through
``/proc/self/clear_refs``), so every phase has its own peak:

    setup     imports, data, process group, DeepSpeed's comm op: the same for every strategy
    model     after ``configure_model`` (under ZeRO-3: inside ``zero.Init``, so sharded)
    engine    after the strategy wrapped model and optimizer (DDP reducer, ZeRO flat buffers)
    forward   after the first forward (activations)
    backward  after the first backward (gradients, reduction buckets)
    step      after the first optimizer step (Adam's moments are created lazily here)
    steady    the peak over the remaining steps

At ``engine``, ``backward`` and ``step`` it also counts live tensor bytes by owner (module
parameters, their gradients, the inner optimizer's states, each tensor attribute of
DeepSpeed's ZeRO optimizer), deduplicated by storage. What RSS holds beyond those tensors
is the process baseline, tensors held only in C++ (DDP's gradient buckets), and memory the
allocator kept. After each forward it notes how many ZeRO-3 parameters are gathered whole.
"""
from __future__ import annotations

import gc
import json
import os
import re
import time
from pathlib import Path

import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

MB = 1e6


def rss_mb() -> tuple[float, float]:
    """``(current, peak since the last reset)`` resident set of this process, in MB."""
    status = Path("/proc/self/status").read_text()
    kb = {k: int(re.search(rf"{k}:\s+(\d+)", status).group(1)) for k in ("VmRSS", "VmHWM")}
    return kb["VmRSS"] * 1024 / MB, kb["VmHWM"] * 1024 / MB


def reset_peak() -> None:
    """Start a new peak (``VmHWM``) from the current RSS (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def _storages(obj, depth: int = 0):
    """Storages of the tensors in ``obj``: a tensor, or containers and plain objects holding them."""
    if isinstance(obj, torch.Tensor):
        for t in (obj, getattr(obj, "ds_tensor", None)):  # ZeRO-3 keeps the shard on the param
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                s = t.untyped_storage()
                if s.nbytes():
                    yield s.data_ptr(), s.nbytes()
    elif depth >= 4:
        return
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _storages(item, depth + 1)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _storages(item, depth + 1)
    elif depth and type(obj).__module__.startswith("deepspeed") and hasattr(obj, "__dict__"):
        yield from _storages(vars(obj), depth + 1)  # e.g. ZeRO-3's IPGBucketZ3 holding its buffer


def census(module: torch.nn.Module, optimizer) -> dict[str, float]:
    """Live tensor MB by owner. A storage counts once, under the first owner that holds it;
    an owner whose storages were all counted already is listed as ``= shared``."""
    seen: set[int] = set()
    out: dict[str, float | str] = {}

    def add(name: str, obj) -> None:
        mine = dict(_storages(obj))
        new = {ptr: n for ptr, n in mine.items() if ptr not in seen}
        seen.update(new)
        if sum(new.values()) >= 0.1 * MB:
            out[name] = round(sum(new.values()) / MB, 1)
        elif mine:
            out[name] = f"= shared ({sum(mine.values()) / MB:.1f})"

    params = list(module.parameters())
    add("module.params", params)
    add("module.grads", [p.grad for p in params if p.grad is not None])
    inner = getattr(optimizer, "optimizer", optimizer)  # DeepSpeed wraps the torch optimizer
    add("optimizer.state", [dict(s) for s in getattr(inner, "state", {}).values()])
    if inner is not optimizer:  # a ZeRO optimizer: its flat buffers, partitions, buckets
        for name, value in sorted(vars(optimizer).items()):
            if name not in ("optimizer", "param_names"):
                add(f"zero.{name.replace('_DeepSpeedZeroOptimizer_Stage3__', '')}", value)
    add("other tensors", [o for o in gc.get_objects() if isinstance(o, torch.Tensor)])
    return out


def gathered_mb(module: torch.nn.Module) -> float:
    """ZeRO-3: MB of sharded parameters gathered whole right now (small persistent ones excluded)."""
    return sum(p.ds_numel * p.element_size() for p in module.parameters()
               if getattr(p, "ds_status", None) is not None and p.ds_status.name == "AVAILABLE"
               and not p.ds_persist) / MB


class MemoryProbe(Callback):
    """Records RSS per milestone, tensor censuses and step times; writes one JSON per rank.

    Args:
        out_dir: where to write ``rank<N>.json``; default ``$MEMPROBE_DIR``.
    """

    def __init__(self, out_dir: str | None = None) -> None:
        self.out_dir = Path(out_dir or os.environ["MEMPROBE_DIR"])
        self.record: dict = {"milestones": {}, "census": {}, "step_s": []}
        self._t0 = 0.0

    def _mark(self, name: str) -> None:
        if name in self.record["milestones"]:
            return
        rss, peak = rss_mb()
        self.record["milestones"][name] = {"rss": round(rss, 1), "peak": round(peak, 1)}
        reset_peak()

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._mark("setup")
        # Lightning adds a ModelCheckpoint when none is configured: saving (and reloading for
        # validation) a sharded checkpoint is not what this measures, and takes a while.
        trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, ModelCheckpoint)]
        build = pl_module.configure_model

        def configure_model() -> None:  # Lightning calls it next, inside the sharding context
            build()
            self._mark("model")

        pl_module.configure_model = configure_model

    def on_fit_start(self, trainer, pl_module) -> None:
        self._mark("engine")
        self.record["census"]["engine"] = census(trainer.strategy.model, trainer.optimizers[0])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._t0 = time.perf_counter()

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self._mark("forward")
        gathered = self.record.setdefault("gathered_after_forward_mb", [])
        gathered.append(round(gathered_mb(pl_module), 1))

    def on_after_backward(self, trainer, pl_module) -> None:
        if "backward" not in self.record["milestones"]:
            self._mark("backward")  # gradients and reduction buckets are alive only now
            self.record["census"]["backward"] = census(trainer.strategy.model, trainer.optimizers[0])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.record["step_s"].append(time.perf_counter() - self._t0)
        if "step" not in self.record["milestones"]:
            self._mark("step")
            self.record["census"]["step"] = census(trainer.strategy.model, trainer.optimizers[0])
            reset_peak()  # the census's own garbage is not training's
            return
        rss, peak = rss_mb()  # VmHWM is not reset again: the peak over all later steps
        self.record["milestones"]["steady"] = {"rss": round(rss, 1), "peak": round(peak, 1)}
        if trainer.global_step >= trainer.max_steps > 0:
            self._write(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._write(trainer)  # when max_steps did not end training

    def _write(self, trainer) -> None:
        rank = trainer.global_rank
        self.record.update(rank=rank, world_size=trainer.world_size,
                           batch_size=int(trainer.datamodule.batch_size))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"rank{rank}.json").write_text(json.dumps(self.record, indent=1))
