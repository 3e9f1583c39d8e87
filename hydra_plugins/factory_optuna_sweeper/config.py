"""The sweeper's config, registered as ``hydra/sweeper: optuna`` (the surface of Hydra's own
Optuna sweeper, plus ``pruner`` and ``resume``)."""

from dataclasses import dataclass
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.factory_optuna_sweeper.sweeper.OptunaSweeper"
    # Any optuna.samplers class; TPE learns from finished trials, RandomSampler does not.
    sampler: Any = None  # hydra/sweeper/sampler=tpe|random; null: TPE
    # Any optuna.pruners class, or null for no pruning; jobs report each validation epoch.
    pruner: Any = None
    direction: Optional[str] = None  # maximize | minimize; null: from the config's monitor.mode
    storage: Optional[str] = None  # an Optuna storage URL; null: a journal file in the sweep dir
    study_name: Optional[str] = None  # null: <task_name>-<hash of the command's overrides>
    n_trials: int = 20
    n_jobs: int = 1  # trials launched together (in parallel under a submitit launcher)
    max_failure_rate: float = 1.0  # stop when more than this share of a batch fails
    params: Optional[Dict[str, str]] = None  # key: Hydra sweep syntax (interval, choice, range)
    resume: bool = False  # continue the newest unfinished sweep of the same command


ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="factory")
