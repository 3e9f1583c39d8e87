"""Which config keys are hyperparameters: the rule ``factory.compare`` tabulates and plots by.

A hyperparameter is a value that changes the model or the data it learns from. Between
runs, a config key is compared when all of these hold:

1. it lies in a hyperparameter group (``HYPERPARAMETER_GROUPS``): ``model``, ``data``,
   ``trainer``, ``strategy``, ``seed``, early stopping. Logger, report, paths, callbacks'
   files, monitor, plan, tracking and hydra settings never count;
2. it is not bookkeeping (``BOOKKEEPING``): how many workers load batches, where files go,
   which devices run it, how often it logs;
3. it is not derived: a value the run's own config sets by interpolation
   (``model.scheduler.T_max: ${trainer.max_epochs}``, ``data.split_seed: ${seed}``) is
   compared once, at its source. The unresolved config is the run's ``.hydra/config.yaml``;
   a run trained in a notebook has none, and the project's ``train`` config stands in;
4. its value differs between the runs.

A sweep's searched parameters (``sweep.json`` ``params``) are hyperparameters whatever
their key.
"""
from __future__ import annotations

import os
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from factory.errors import ConfigError
from factory.rundir.layout import HYDRA_CONFIG, HYDRA_DIR
from factory.sweeps.results import config_values

#: Config groups (dotted prefixes) whose values change the model, the data or the training.
HYPERPARAMETER_GROUPS = ("model", "data", "trainer", "strategy", "seed", "callbacks.early_stopping")

#: Keys inside those groups that change neither (``fnmatch`` patterns on the dotted key).
BOOKKEEPING = (
    "*._partial_", "*._recursive_", "*._convert_",        # how Hydra instantiates, not what
    "data.num_workers", "data.pin_memory", "data.persistent_workers", "data.prefetch_factor",
    "*_dir", "*.dirpath", "*.save_dir", "*.storage_options*", "*.cache*",   # where files are read/written
    "trainer.accelerator", "trainer.devices", "trainer.num_nodes",           # where it runs
    "trainer.enable_*", "trainer.log_every_n_steps", "trainer.default_root_dir", "trainer.logger",
    "trainer.callbacks", "trainer.profiler", "trainer.deterministic", "trainer.benchmark",
    "trainer.check_val_every_n_epoch", "trainer.num_sanity_val_steps", "trainer.barebones",
    "callbacks.early_stopping.monitor", "callbacks.early_stopping.mode",     # the monitor's, set once
    "callbacks.early_stopping.verbose", "callbacks.early_stopping.log_rank_zero_only",
    "strategy.process_group_backend", "strategy.timeout*", "strategy.logging_level",
)


def is_hyperparameter(key: str) -> bool:
    """Whether a dotted config key may be a hyperparameter (rules 1 and 2 of the module)."""
    in_group = any(key == group or key.startswith(group + ".") for group in HYPERPARAMETER_GROUPS)
    return in_group and not any(fnmatchcase(key, pattern) for pattern in BOOKKEEPING)


def differing_hyperparameters(configs: Mapping[Any, DictConfig | Mapping],
                              unresolved: Mapping[Any, DictConfig | Mapping | None] | None = None,
                              searched: Iterable[str] = ()) -> pd.DataFrame:
    """The hyperparameters whose values differ between runs, one row per run, one column per key.

    Args:
        configs: per run label, its resolved config (``config.yaml``).
        unresolved: per run label, its config before interpolation (``.hydra/config.yaml``),
            or None where the run has none (the project's ``train`` config stands in).
        searched: keys that count whatever the rule says (a sweep's params).

    Returns:
        Values as the config holds them (lists as JSON text); columns in config order.
    """
    labels = list(configs)
    frame = pd.DataFrame([config_values(configs[label]) for label in labels], index=labels)
    if frame.empty:
        return frame
    searched = set(searched)
    unresolved = unresolved or {}
    derived = set.intersection(*(set(interpolated_keys(unresolved.get(label))) for label in labels))
    keep = [key for key in frame.columns
            if key in searched or (is_hyperparameter(key) and key not in derived and _differs(frame[key]))]
    return frame[keep]


def interpolated_keys(config: DictConfig | Mapping | None) -> set[str]:
    """Dotted keys whose value is set by an interpolation (``${...}``) in ``config``; with None,
    those of the project's ``train`` config."""
    if config is None:
        return _project_interpolations()
    values = config_values(config if isinstance(config, DictConfig) else OmegaConf.create(dict(config)))
    return {key for key, value in values.items() if isinstance(value, str) and "${" in value}


def unresolved_config(run_dir: str | Path) -> DictConfig | None:
    """The run's config before interpolation (Hydra's ``.hydra/config.yaml``), None without one."""
    path = Path(run_dir) / HYDRA_DIR / HYDRA_CONFIG
    return OmegaConf.load(path) if path.is_file() else None


def _project_interpolations() -> frozenset[str]:
    """``interpolated_keys`` of the ``train`` config ``compose`` builds now: with the user's config
    directory (``$FACTORY_CONFIG_DIR``) as the CLI, notebooks and reports read it, so a kernel that
    sets, changes or unsets it gets that directory's keys, not the first ones cached."""
    from factory.config.compose import CONFIG_DIR_ENV

    given = os.environ.get(CONFIG_DIR_ENV)
    try:
        return _interpolations_with(str(Path(given).expanduser().absolute()) if given else None)
    except ConfigError:  # a user's config directory that is gone: every differing key counts, none is derived
        return frozenset()  # not cached: the directory may be back on the next call


@lru_cache(maxsize=8)
def _interpolations_with(config_dir: str | None) -> frozenset[str]:
    from factory.config.compose import compose  # Hydra: only when a run lacks .hydra/

    return frozenset(interpolated_keys(compose("train", check=False, config_dir=config_dir)))


def _differs(column: pd.Series) -> bool:
    return column.astype(str).nunique() > 1  # as text: None, NaN and "[8, 4]" compare too
