"""``data.cv_folds=k``: one run trains a model per fold, reports the mean and spread, keeps one model.

Fold ``i`` (``factory.data.split.cv_fold_split``: stratified, from ``data.split_seed``) is the
test split of the ``i``-th fit; its val split comes from the other folds. The folds train one
after another in this process, each from the run's seed, in ``<run_dir>/cv/<i>/`` (its
checkpoints while it trains, then only its history ``csv/metrics.csv``), with the baselines
fitted on the same fold. ``metrics.json`` holds the mean over the folds where a one-split run
holds its metrics, and the spread and each fold's metrics in its ``cv`` section
(``factory.rundir.cv``).

The run keeps the model of the fold with the best monitored val metric as
``checkpoints/best.ckpt`` (its history becomes the run's ``csv/metrics.csv``), and records
that fold as ``data.cv_fold`` in ``config.yaml`` and in the checkpoint: ``evaluate``,
predictions and the report then rebuild that fold's split and test on rows the model never
trained on. A refit on all rows would have no such rows left.
"""
from __future__ import annotations

import copy
import logging
import os
import shutil
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, open_dict

from factory.console import PROGRESS
from factory.rundir import cv, layout, manifest

#: The callback an Optuna sweep adds to each trial (``factory.sweeps.trial``, a layer above: named, not imported).
PRUNING_CALLBACK = "factory.sweeps.trial.OptunaPruning"
#: ``fit_fold(fold_cfg, fold_dir)``: set up, fit, validate and test one fold; its metrics by
#: section, best checkpoint and DataModule (``factory.training.recipe``).
FitFold = Callable[[DictConfig, Path], tuple]


def fold_config(cfg: DictConfig, fold: int, fold_dir: Path) -> DictConfig:
    """``cfg`` for fold ``fold``: that fold as the test split, the fold's directory as its run
    directory (checkpoints, CSV history), and no tracker (the run's own logger gets the run's
    config and mean metrics once). A sweep's pruning callback is left out: its per-epoch values
    would restart with each fold, and the trial's value is the mean the run reports."""
    fold_cfg = copy.deepcopy(cfg)
    with open_dict(fold_cfg):
        fold_cfg.data.cv_fold = fold
        fold_cfg.paths.run_dir = str(fold_dir)
        fold_cfg.logger = None
        for name, node in (fold_cfg.get("callbacks") or {}).items():
            if node is not None and node.get("_target_") == PRUNING_CALLBACK:
                fold_cfg.callbacks[name] = None
    return fold_cfg


def cross_validate(cfg: DictConfig, context, fit_fold: FitFold) -> tuple[dict, str | None]:
    """Train every fold, keep the best fold's model; the run's metrics and kept checkpoint.

    Args:
        cfg: the run's validated config (``data.cv_folds`` set).
        context: the run's ``RunContext`` (its data record is set to the kept fold's).
        fit_fold: trains one fold.

    Returns:
        ``metrics.json``'s content (``factory.rundir.cv.aggregate``) and ``checkpoints/best.ckpt``.
    """
    folds, metric, mode = cfg.data.cv_folds, cfg.monitor.metric, cfg.monitor.mode
    per_fold, checkpoints, kept, kept_data = [], [], None, None
    for fold in range(folds):
        logging.getLogger(PROGRESS).info(f"cross-validation: fold {fold + 1}/{folds}")
        fold_dir = layout.fold_dir(context.run_dir, fold)
        metrics, best, datamodule = fit_fold(fold_config(cfg, fold, fold_dir), fold_dir)
        per_fold.append(metrics)
        checkpoints.append(best)
        value = metrics["val"].get(metric)
        if kept is None or (value is not None and _better(value, per_fold[kept]["val"].get(metric), mode)):
            kept, kept_data = fold, datamodule
    context.set_up(kept_data)  # first: the run's CSV logger starts by clearing csv/, which _keep fills
    best = _keep(context.run_dir, kept, checkpoints[kept])
    for fold in range(folds):  # the other folds' models are not kept: only their histories
        shutil.rmtree(layout.checkpoint_dir(layout.fold_dir(context.run_dir, fold)), ignore_errors=True)
    kept_cfg = copy.deepcopy(cfg)
    with open_dict(kept_cfg):
        kept_cfg.data.cv_fold = kept
    manifest.write_config(context.run_dir, kept_cfg)  # the kept model's split, for evaluate and reports
    return cv.aggregate(per_fold, kept), best


def _better(value: float, than: float | None, mode: str) -> bool:
    return than is None or (value > than if mode == "max" else value < than)


def _keep(run_dir: Path, fold: int, checkpoint: str | None) -> str | None:
    """Move fold ``fold``'s best checkpoint to ``checkpoints/best.ckpt`` and its history to ``csv/``."""
    history = layout.fold_dir(run_dir, fold) / layout.HISTORY
    if history.is_file():
        (run_dir / layout.HISTORY).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(history, run_dir / layout.HISTORY)
    if not checkpoint:
        return None
    target = layout.checkpoint_dir(run_dir) / layout.BEST
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(checkpoint, target)
    return str(target)
