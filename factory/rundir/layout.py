"""Every file and folder of a run directory, and run ids: named here once, imported everywhere.

Layout of ``outputs/<task_name>/<YYYY-MM-DD_HH-MM-SS>_<id>/`` (a sweep trial's: ``<n>_<sweep id>``)::

    run.json                 MANIFEST: the run's record (status, provenance, data, checkpoints)
    config.yaml              CONFIG: the resolved config, credentials masked (factory.redact)
    metrics.json             METRICS: final val/test (and baseline) metrics
    csv/metrics.csv          HISTORY: the metrics history (Lightning's CSVLogger, always written)
    checkpoints/best.ckpt    BEST: by the monitored metric (a directory under DeepSpeed ZeRO)
    checkpoints/last.ckpt    LAST: with each new best (a hard link), on SIGTERM/Ctrl-C, every N steps if set; what resume continues
    checkpoints/best-fp32.ckpt  a ZeRO directory's export (``checkpoints.export_path``)
    hpc_ckpt_<n>.ckpt        Lightning's SLURM requeue checkpoints (HPC_CHECKPOINTS)
    .hydra/                  HYDRA_DIR: Hydra's config.yaml, hydra.yaml, overrides.yaml (HYDRA_FILES)
    .run.lock                LOCK: held by the live process of the run (resume=auto)
    train.log                RUN_LOG: everything a run does not show on the console (Hydra's job log under
                             scripts/train.py, named after the script; in a kernel, factory.training.output's)
    wandb/ tensorboard/      the trackers' files, when logger= selects them (their loggers' save_dir)
    cv/<i>/csv/metrics.csv   CV_FOLDS: fold i's history in a cross-validated run (data.cv_folds)
    profile.json             PROFILE: the reference profile drift is measured against (factory.monitoring.profile)
    profile-sample.parquet   PROFILE_SAMPLE: up to 10,000 of the profile's rows (raw features + score)
    tokenizer.json           TOKENIZER: a language model's tokenizer (Hugging Face JSON; its sha256 in run.json data)

The conf/ YAML repeats three of these for Lightning (``conf/callbacks/default.yaml``: ``checkpoints``
and ``filename: best``; ``conf/logger/csv.yaml``: ``name: csv``); ``tests/unit/rundir/test_layout.py``
holds them equal. Nothing here imports the rest of factory (but its errors): the config resolvers,
``resume`` and ``guard`` read run ids from here.
"""
from __future__ import annotations

import os
import re
import secrets
from datetime import datetime
from pathlib import Path

from factory.errors import ConfigError

MANIFEST = "run.json"
CONFIG = "config.yaml"
METRICS = "metrics.json"
#: Lightning's ``CSVLogger(save_dir=<run dir>, name=CSV_DIR, version="")`` writes ``csv/metrics.csv``.
CSV_DIR = "csv"
HISTORY = Path(CSV_DIR, "metrics.csv")
#: A continued run's earlier history while Lightning rewrites ``HISTORY`` (``resume.finish_history``).
HISTORY_STASH = Path(CSV_DIR, "metrics.before-resume.csv")
CHECKPOINTS = "checkpoints"
#: ``ModelCheckpoint(filename="best")`` and ``save_last``: Lightning adds ``.ckpt``.
BEST = "best.ckpt"
LAST = "last.ckpt"
#: Lightning's SLURM auto-requeue checkpoints, in the run directory itself.
HPC_CHECKPOINTS = "hpc_ckpt_*.ckpt"
#: A DeepSpeed ZeRO checkpoint directory's one-file export: ``best.ckpt/`` -> ``best-fp32.ckpt``.
FP32_SUFFIX = "-fp32.ckpt"
LOCK = ".run.lock"
#: Hydra's ``output_subdir`` (``conf/hydra/default.yaml``) and the files Hydra writes there.
HYDRA_DIR = ".hydra"
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
HYDRA_CONFIG = HYDRA_FILES[0]  # the composed config before interpolation (${...} kept)
#: A sweep directory's Hydra record (``hydra.sweep.dir``), beside the trials' run directories.
MULTIRUN = "multirun.yaml"
#: The run's log: Hydra's job log of ``scripts/train.py`` (``${hydra.job.name}.log``), or ``factory.train``'s in a kernel.
RUN_LOG = "train.log"
#: An evaluation run's log (``scripts/evaluate.py`` logs to the console only until its inputs check out).
EVALUATE_LOG = "evaluate.log"
#: A cross-validated run's folds (``data.cv_folds``): ``cv/<i>/`` is fold i's run directory while it trains.
CV_FOLDS = "cv"
WANDB_DIR = "wandb"
#: A completed run's reference profile (``factory.monitoring.profile``), copied into registered versions.
PROFILE = "profile.json"
PROFILE_SAMPLE = "profile-sample.parquet"
#: A language model run's tokenizer (``TextDataModule.tokenizer_json``), written at set-up.
TOKENIZER = "tokenizer.json"
TENSORBOARD_DIR = "tensorboard"


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


def fold_dir(run_dir: str | Path, fold: int) -> Path:
    """``<run_dir>/cv/<fold>``: where fold ``fold`` of a cross-validated run trains."""
    return Path(run_dir) / CV_FOLDS / str(fold)


def last_checkpoint(run_dir: str | Path) -> Path:
    """``<run_dir>/checkpoints/last.ckpt`` (which may not exist)."""
    return Path(run_dir) / CHECKPOINTS / LAST


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a run's ``run.json`` (what every search of ``outputs/`` looks for)."""
    return (Path(path) / MANIFEST).is_file()


def in_checkpoint_dir(checkpoint: str | Path) -> bool:
    """Whether ``checkpoint`` lies in a run's ``checkpoints/`` (so its run directory is two levels up)."""
    return Path(checkpoint).parent.name == CHECKPOINTS


#: Set by a run for the processes it launches (DDP workers), so they share its directory.
RUN_ID_ENV = "FACTORY_RUN_ID"
#: A run id names one directory under ``outputs/<task>/``: one path component, no surprises in a shell.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def new_run_id() -> str:
    """``<YYYY-MM-DD_HH-MM-SS>_<6 hex>``: sortable by start, unique within a second."""
    return f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{secrets.token_hex(3)}"


def check_run_id(run_id: str, source: str = RUN_ID_ENV) -> str:
    """``run_id`` if it is a name (letters, digits, ``.``, ``_``, ``-``; not a path).

    Raises:
        ConfigError: naming ``source`` (the variable or key that gave the id).
    """
    if not _RUN_ID.fullmatch(run_id):  # also refuses "", "." and "..": a name starts with a letter or digit
        raise ConfigError(f"{source}={run_id!r}: a run id is a name, not a path: up to 128 letters, digits, "
                          "'.', '_' or '-', starting with a letter or digit")
    return run_id


def fixed_run_id() -> str | None:
    """The run id ``FACTORY_RUN_ID`` fixes, checked; ``None`` when it is unset or empty."""
    value = os.environ.get(RUN_ID_ENV)
    return check_run_id(value) if value else None
