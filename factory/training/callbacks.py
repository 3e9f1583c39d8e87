"""Callbacks factory adds by itself."""
from __future__ import annotations

import logging
import time

import pytorch_lightning as pl

from factory.console import PROGRESS


class EpochSummary(pl.Callback):
    """One line per epoch where there is no progress bar (logs, CI, notebooks, subprocesses).

    Logged on rank zero to ``factory.console.PROGRESS``: what a run shows on the console by default.
    """

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.monotonic()  # a fit resumed mid-epoch skips on_train_epoch_start

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The epoch's validation has run by now. train/loss: the epoch's mean on this rank (the
        # logged step value repeats across short epochs, and train/loss_epoch is logged after us).
        shown = {k: float(v) for k, v in trainer.callback_metrics.items()
                 if k.startswith("val/") or k == "train/loss"}
        running = getattr(pl_module, "running_train_loss", lambda: None)()
        if running is not None:
            shown["train/loss"] = running
        values = "  ".join(f"{k} {v:.4f}" for k, v in sorted(shown.items()))
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        if trainer.is_global_zero:
            seconds = time.monotonic() - self._start
            logging.getLogger(PROGRESS).info(f"epoch {trainer.current_epoch + 1}/{total}  {values}  ({seconds:.1f} s)")
