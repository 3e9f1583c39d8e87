"""Build the objects a run needs from config nodes, naming the key when one fails."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from factory.errors import ConfigError, FactoryError

CSV_LOGGER = "pytorch_lightning.loggers.CSVLogger"


def build(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node, **kwargs)``; a failure names ``key`` in one line.

    Errors the component raises about its own input (``FactoryError``) pass unchanged.
    """
    from hydra.errors import InstantiationException

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, FactoryError):
            raise e.__cause__ from None
        reason = e.__cause__ or e
        text = str(reason).strip().splitlines()
        raise ConfigError(f"{key}: {text[-1] if text else type(reason).__name__}") from e


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
    from factory.distributed.precision import supported_precision
    from factory.training.fault_tolerance import RankState

    callbacks.append(RankState())  # every checkpoint carries each rank's RNG states: a resume repeats exactly

    progress = cfg.trainer.get("enable_progress_bar")
    # A bar on a terminal; in logs, notebooks and CI it only adds noise: a line per epoch instead.
    if progress is None:  # FACTORY_PROGRESS_BAR=0: report kernels, where a bar is hundreds of outputs
        progress = sys.stderr.isatty() and os.environ.get("FACTORY_PROGRESS_BAR") != "0"
    if not progress:
        from factory.training.callbacks import EpochSummary

        callbacks.append(EpochSummary())
    if cfg.get("trial") and cfg.trial.prune:  # a job of an Optuna sweep: report to its trial
        from factory.sweeps.trial import OptunaPruning

        callbacks.append(OptunaPruning(cfg.trial.storage, cfg.trial.study, cfg.trial.number, cfg.monitor.metric))
    return build(
        cfg.trainer, "trainer",
        precision=supported_precision(cfg.trainer.precision, use_cuda=uses_cuda(cfg.trainer)),
        strategy=build(cfg.strategy, "strategy"),
        logger=build_loggers(cfg, run_dir),
        callbacks=callbacks,
        default_root_dir=str(run_dir),
        enable_progress_bar=progress,
    )


def uses_cuda(trainer_cfg: DictConfig) -> bool:
    """Whether the Trainer will run on CUDA GPUs (``auto`` picks them when present)."""
    import torch

    return trainer_cfg.get("accelerator", "auto") in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def checkpoint_callback(trainer) -> Any | None:
    from pytorch_lightning.callbacks import ModelCheckpoint

    return next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
