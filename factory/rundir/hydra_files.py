"""Hydra's own files in a run directory (``.hydra/``) and a sweep directory, without credentials."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from factory import redact
from factory.rundir.layout import HYDRA_FILES, MULTIRUN


class RedactHydraFiles(Callback):
    """Hydra callback (``conf/hydra/default.yaml``): rewrites the files Hydra writes without credentials.

    A job's ``.hydra/{config,hydra,overrides}.yaml`` are written, unresolved, just before
    ``on_job_start``; a sweep's ``multirun.yaml`` when it launches its first jobs.
    Interpolations stay as typed.
    """

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        subdir = config.hydra.get("output_subdir")
        if subdir is not None:
            folder = Path(config.hydra.runtime.output_dir) / str(subdir)
            for name in HYDRA_FILES:
                redact.yaml_file(folder / name)
        if config.hydra.mode == RunMode.MULTIRUN:
            redact.yaml_file(Path(config.hydra.sweep.dir) / MULTIRUN)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        redact.yaml_file(Path(config.hydra.sweep.dir) / MULTIRUN)  # a sweep whose jobs ran elsewhere
