"""What makes a run survive being killed: RNG states in checkpoints, checkpoints on SIGTERM and SIGINT.

A resumed run reproduces an uninterrupted one only if everything random continues where
it stopped. Lightning restores weights, optimizer, schedulers, loops and callback states,
but not the RNGs (dropout draws from torch's), and it builds the first training
iterator of a resumed fit before it tells the sampler the epoch. ``RankState`` puts every
rank's RNG states in each checkpoint (``factory.distributed.ranks``);
``data_position`` (``factory.data.batches``) tells the DataModule which epoch and batch the
restored loops are at.

SIGTERM (SLURM preemption, ``scancel``, Kubernetes) is handled here rather than by
Lightning's own handler, which runs a collective ``broadcast`` inside the signal handler
and stops each rank where it happens to notice the flag. ``PreemptionCheckpoint`` sets a
flag, and at the end of the next training batch all ranks agree (one all-reduce), save
``last.ckpt`` together and stop with ``Interrupted`` (exit code 143). SIGINT (Ctrl-C) is
handled the same way (exit code 130) instead of Lightning's, which saves nothing and
exits 1. Lightning's SLURM auto-requeue (SIGUSR1 before the time limit,
``hpc_ckpt_*.ckpt``) is left as it is.
"""
from __future__ import annotations

import random
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from factory.console import notice
from factory.distributed.ranks import gather_per_rank, own_state
from factory.rundir import layout
from factory.training.checkpointing import unshare

#: Exit code of a run stopped by SIGTERM: 128 + 15, as if the signal had ended it. Non-zero,
#: so shells, Kubernetes Jobs (restartPolicy OnFailure) and torchrun restart it; SLURM
#: requeues a preempted job whatever the exit code. SIGINT's is 130.
EXIT_INTERRUPTED = 128 + signal.SIGTERM
#: The signals ``PreemptionCheckpoint`` turns into a checkpoint and a stop.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
LAST = layout.LAST  # where ModelCheckpoint(save_last=True) writes too: one file, the newest state


class Interrupted(SystemExit):
    """Training stopped on a signal after saving ``checkpoint``; ``run.json`` says ``interrupted``.

    A ``SystemExit``: it passes through ``except Exception`` handlers (Hydra's, a sweep's)
    and ends the process with 128 + the signal's number (``EXIT_INTERRUPTED`` for SIGTERM,
    130 for SIGINT) and no traceback.
    """

    def __init__(self, signum: int, checkpoint: str, epoch: int, step: int):
        super().__init__(128 + signum)
        self.signal_name = signal.Signals(signum).name
        self.checkpoint, self.epoch, self.step = checkpoint, epoch, step

    def __str__(self) -> str:
        return (f"{self.signal_name} at epoch {self.epoch}, step {self.step}; saved {self.checkpoint} "
                "(rerun the same command with resume=auto to continue)")


class RankState(pl.Callback):
    """Saves what each rank holds on its own in every checkpoint; each rank takes its own back.

    That is the torch (CPU and CUDA), numpy and Python RNG states. (Buffers such as BatchNorm
    statistics are rank 0's on every rank, under DDP and DeepSpeed alike, so a checkpoint's
    copy serves all.) The states are gathered from all ranks when a checkpoint is written
    (every rank takes part in a save, so the gather is collective) and restored when
    training starts. Checkpoints without them resume with fresh states.
    """

    def __init__(self) -> None:
        self._loaded: list[dict] | None = None

    def state_dict(self) -> dict[str, Any]:
        state = {"torch": torch.get_rng_state(), "numpy": _numpy_state(), "python": random.getstate(),
                 "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
        return {"ranks": gather_per_rank(state)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = state_dict.get("ranks")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Here, not in load_state_dict: strategy setup and the sanity check run in between.
        if not self._loaded:
            return
        state, self._loaded = own_state(self._loaded, trainer.global_rank), None
        torch.set_rng_state(state["torch"])
        _set_numpy_state(state["numpy"])
        random.setstate(state["python"])
        if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state() -> dict[str, Any]:
    # As tensors and numbers: Lightning reloads checkpoints with torch.load(weights_only=True).
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_state(state: dict[str, Any]) -> None:
    np.random.set_state((state["name"], state["keys"].numpy().astype(np.uint32), state["pos"],
                         state["has_gauss"], state["cached_gaussian"]))


class PreemptionCheckpoint(pl.Callback):
    """Keeps ``last.ckpt`` recent for preemption: on SIGTERM and SIGINT, and optionally every N steps.

    Both happen after an optimizer step (never inside a gradient-accumulation window), so
    the checkpoint holds everything the next step needs.

    Args:
        dirpath: the run's checkpoint directory (``last.ckpt`` is written there, as by
            ``ModelCheckpoint(save_last=True)`` at each epoch end).
        every_n_train_steps: also save ``last.ckpt`` every N optimizer steps; 0: only at
            epoch ends (ModelCheckpoint) and on SIGTERM.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int = 0):
        if every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be >= 0, got {every_n_train_steps}")
        self.dirpath = dirpath
        self.every_n_train_steps = every_n_train_steps
        self._signal: int | None = None
        self._trainer: pl.Trainer | None = None
        self._step_before = -1

    @property
    def state_key(self) -> str:
        return self.__class__.__qualname__

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning registered its handlers just before this hook and restores the previous
        # ones at teardown, so this one lives exactly as long as the fit.
        self._signal, self._trainer = None, trainer
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        first = self._signal is None
        self._signal = signum
        launcher = getattr(self._trainer.strategy, "launcher", None) if self._trainer else None
        if first and getattr(launcher, "procs", None):  # worker processes this rank started
            launcher.kill(signum)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._step_before = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step == self._step_before:
            return  # inside a gradient-accumulation window: its gradients would be in no checkpoint
        stop = trainer.strategy.reduce_boolean_decision(self._signal is not None, all=False)
        periodic = self.every_n_train_steps and trainer.global_step % self.every_n_train_steps == 0
        if not (stop or periodic):
            return
        path = str(Path(self.dirpath) / LAST)
        unshare(trainer, path)  # last.ckpt may be a link to best.ckpt (checkpointing.RunCheckpoint)
        trainer.save_checkpoint(path)  # every rank: ZeRO writes one shard per rank
        if stop:
            # Lightning writes this step's logged values right after this hook; raising skips that
            # and the resumed run starts at the next step, so the history would lack the row.
            trainer._logger_connector.update_train_step_metrics()
            error = Interrupted(self._signal or signal.SIGTERM, path, trainer.current_epoch, trainer.global_step)
            if trainer.is_global_zero:  # the one line a user (or a scheduler's log) sees
                notice(f"interrupted: {error}")  # shown in a quiet run too (factory.training.output)
            raise error
