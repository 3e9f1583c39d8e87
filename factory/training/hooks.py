"""After-run hooks: what happens once a run has ended and ``run.json`` is final.

``conf/train.yaml`` names them (``after_run:``, dotted paths to functions), so training
imports none of the stages that run after it (trackers, reports, and later the registry
and monitoring): each hook is imported by name when the run ends and called with one
``AfterRun``, in order, on rank zero, after a completed, pruned, failed or interrupted
run alike. A hook's failure is logged and never changes the run's status: the run was
recorded before any hook ran. ``factory.config.callables`` checks the names at
validation time, before torch loads.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from factory.rundir.guard import FINISHED
from factory.rundir.manifest import RunRecord

log = logging.getLogger(__name__)

#: Statuses of a run that finished (its metrics are final), as opposed to failed or interrupted.


@dataclass
class AfterRun:
    """What each after-run hook receives: the run as it ended."""

    cfg: DictConfig  # the run's config, ``paths.run_dir`` pinned
    run_dir: Path
    record: RunRecord  # as saved in run.json
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # as in metrics.json; {} unless finished
    loggers: list[Any] = field(default_factory=list)  # the Trainer's loggers; [] if it was never built
    error: BaseException | None = None  # what ended a failed or interrupted run

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def finished(self) -> bool:
        """Completed or pruned: the metrics are the run's result."""
        return self.status in FINISHED


def call_after_run(run: AfterRun) -> None:
    """Call the hooks ``run.cfg.after_run`` names, in order; each one's failure is logged on its own.

    A config without the key (composed before it existed) calls the standard hooks.
    """
    from hydra.utils import get_method

    from factory.config.schemas import STANDARD_AFTER_RUN

    hooks = run.cfg.get("after_run")
    for name in STANDARD_AFTER_RUN if hooks is None else hooks:
        try:
            get_method(str(name))(run)
        except Exception as e:  # noqa: BLE001: a hook (a tracker, a report) must not fail a recorded run
            log.error("after_run: %s failed on run %s: %s", name, run.run_dir.name, e)
