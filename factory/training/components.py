"""Assemble a run's Trainer (strategy, loggers, callbacks) from its config.

Each node is built with ``factory.config.instantiate.build`` (a failure names the key).
"""
from __future__ import annotations

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


def build_trainer(cfg: DictConfig, run_dir: Path, verbose: bool = True, progress: bool | None = None):
    """A Lightning Trainer with the run's strategy, loggers and callbacks.

    ``verbose=False`` (``factory.training.output``): the model summary goes to the log, not the console.
    ``progress``: a progress bar, else a line per epoch; ``None``: ``output.shows_progress_bar``.
    """
    callbacks = [build(node, f"callbacks.{name}") for name, node in (cfg.get("callbacks") or {}).items()
                 if node is not None]
    from factory.training.fault_tolerance import RankState

    callbacks.append(RankState())  # every checkpoint carries each rank's RNG states: a resume repeats exactly

    if progress is None:
        from factory.training.output import shows_progress_bar

        progress = shows_progress_bar(cfg)
    if not progress:
        from factory.training.callbacks import EpochSummary

        callbacks.append(EpochSummary())
    if not verbose and cfg.trainer.get("enable_model_summary", True) is not False:
        from pytorch_lightning.callbacks import ModelSummary  # logs its table; Lightning's rich one prints it

        callbacks.append(ModelSummary())
    loggers = build_loggers(cfg, run_dir)
    trainer = build(
        cfg.trainer, "trainer",
        precision=supported_precision(cfg.trainer.precision, use_cuda=uses_cuda(cfg.trainer)),
        strategy=build(cfg.strategy, "strategy"),
        logger=loggers,
        callbacks=callbacks,
        default_root_dir=str(run_dir),
        enable_progress_bar=progress,
    )
    if trainer.fast_dev_run:  # Lightning swaps every logger for a dummy; the metrics history is always written
        trainer.loggers = [logger for logger in loggers if _is_csv(logger)]
    return trainer


def _is_csv(logger) -> bool:
    from pytorch_lightning.loggers import CSVLogger

    return isinstance(logger, CSVLogger)


def checkpoint_callback(trainer) -> Any | None:
    from pytorch_lightning.callbacks import ModelCheckpoint

    return next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
