"""The Optuna side of one sweep job: open the study's storage, report, decide to prune."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

JOURNAL_SUFFIX = ".journal"


def open_storage(spec: str) -> Any:
    """An Optuna storage from a URL (``sqlite:///...``, ``postgresql://...``) or a journal file.

    Journal files (Optuna's append-only log) are the default: they need no database and,
    unlike SQLite, tolerate several processes writing at once on local and NFS disks.
    """
    import optuna

    if "://" in spec:
        return _database(spec)
    from optuna.storages.journal import JournalFileBackend

    Path(spec).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(spec)))


@functools.lru_cache(maxsize=None)
def _database(url: str):
    """One storage (one SQLAlchemy engine and pool) per URL per process, however many trials."""
    import optuna

    return optuna.storages.RDBStorage(url)


def connect(storage: str, study: str, number: int):
    """The live ``optuna.Trial`` number ``number`` of ``study``, for reporting from a job.

    The storage keeps trials, not the pruner: that comes from the sweep's config, which every
    job of a Hydra sweep carries (``hydra.sweeper.pruner``).
    """
    import optuna

    loaded = optuna.load_study(study_name=study, storage=open_storage(storage), pruner=sweep_pruner())
    trial_id = loaded._storage.get_trial_id_from_study_id_trial_number(loaded._study_id, number)
    return optuna.trial.Trial(loaded, trial_id)


def sweep_pruner() -> Any:
    """The pruner ``hydra.sweeper.pruner`` describes; Optuna's default outside a Hydra sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    node = HydraConfig.get().sweeper.get("pruner") if HydraConfig.initialized() else None
    return instantiate(node) if node else None


class OptunaPruning(pl.Callback):
    """Reports the monitored validation metric to the trial after each validation epoch and
    stops training when the study's pruner judges the trial hopeless.

    Factory's Optuna sweeper adds it to each job's config (``callbacks.optuna_pruning``) when
    its study has a pruner: training builds it like any callback and never imports sweeps.

    The run then ends with status ``pruned`` (``factory.training.recipe``); the sweeper records the
    trial as pruned. Unlike Optuna's own Lightning callback it does not raise inside
    ``fit``, so checkpoints, metrics and ``run.json`` are still written.
    """

    def __init__(self, storage: str, study: str, number: int, monitor: str) -> None:
        self.trial = connect(storage, study, number)
        self.monitor = monitor
        self.pruned_at: int | None = None  # the epoch the pruner stopped the run at

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.pruned_at is not None:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        epoch = trainer.current_epoch
        if trainer.is_global_zero:
            self.trial.report(float(value), step=epoch)
        should_prune = trainer.strategy.broadcast(trainer.is_global_zero and self.trial.should_prune())
        if should_prune:
            self.pruned_at = epoch
            if trainer.is_global_zero:
                self.trial.set_user_attr("pruned_at_epoch", epoch)
            trainer.should_stop = True
