"""Assemble a run's Trainer (strategy, loggers, callbacks) from its config.

Each node is built with ``factory.config.instantiate.build`` (a failure names the key).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from factory.config.instantiate import build
from factory.distributed.precision import supported_precision, uses_cuda

CSV_LOGGER = "pytorch_lightning.loggers.CSVLogger"


def build_loggers(cfg: DictConfig, run_dir: Path) -> list:
    """The configured logger plus a CSV log in ``<run_dir>/csv/``, which reports read."""
    from pytorch_lightning.loggers import CSVLogger

    from factory.rundir.layout import CSV_DIR

    loggers = []
    if cfg.get("logger") is None or cfg.logger.get("_target_") != CSV_LOGGER:
        loggers.append(CSVLogger(save_dir=str(run_dir), name=CSV_DIR, version=""))
    if cfg.get("logger") is not None:
        from factory.rundir.resume import tracker_identity  # the same wandb run id on every attempt of a run

        loggers.append(build(cfg.logger, "logger", **tracker_identity(cfg.logger, run_dir)))
    return loggers


def build_trainer(cfg: DictConfig, run_dir: Path):
    """A Lightning Trainer with the run's strategy, loggers and callbacks."""
    callbacks = [build(node, f"callbacks.{name}") for name, node in (cfg.get("callbacks") or {}).items()
                 if node is not None]
    from factory.training.fault_tolerance import RankState

    callbacks.append(RankState())  # every checkpoint carries each rank's RNG states: a resume repeats exactly

    progress = cfg.trainer.get("enable_progress_bar")
    # A bar on a terminal; in logs, notebooks and CI it only adds noise: a line per epoch instead.
    if progress is None:  # FACTORY_PROGRESS_BAR=0: report kernels, where a bar is hundreds of outputs
        progress = sys.stderr.isatty() and os.environ.get("FACTORY_PROGRESS_BAR") != "0"
    if not progress:
        from factory.training.callbacks import EpochSummary

        callbacks.append(EpochSummary())
    return build(
        cfg.trainer, "trainer",
        precision=supported_precision(cfg.trainer.precision, use_cuda=uses_cuda(cfg.trainer)),
        strategy=build(cfg.strategy, "strategy"),
        logger=build_loggers(cfg, run_dir),
        callbacks=callbacks,
        default_root_dir=str(run_dir),
        enable_progress_bar=progress,
    )


def checkpoint_callback(trainer) -> Any | None:
    from pytorch_lightning.callbacks import ModelCheckpoint

    return next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
