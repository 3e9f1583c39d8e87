"""The plugin classes ``conf/launcher/*.yaml`` name. Hydra imports every public module of
``hydra_plugins`` at start-up; submitit itself still loads only when a sweep launches."""
from __future__ import annotations

import shutil
from typing import Sequence

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher import submitit_launcher


class _RecordsFailure:
    """A launch that raises (submission refused, a job lost) marks ``sweep.json`` failed first:
    Hydra skips the sweep's end callbacks then, which would leave it ``running`` for good."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        try:
            return super().launch(job_overrides, initial_job_idx)  # type: ignore[misc]
        except Exception as e:  # not KeyboardInterrupt: submitted jobs go on and record themselves
            from factory.sweeps import journal

            journal.fail(str(self.config.hydra.sweep.dir), f"{type(e).__name__}: {e}".strip().splitlines()[0])
            raise


class SlurmLauncher(_RecordsFailure, submitit_launcher.SlurmLauncher):
    """``launcher=slurm``: submitit's SLURM launcher, refusing in one line where there is no SLURM."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        missing = [tool for tool in ("srun", "sbatch") if shutil.which(tool) is None]
        if missing:  # submitit would raise a RuntimeError deep in its executor
            from factory.errors import ConfigError
            from factory.sweeps import journal

            message = (f"launcher=slurm: no SLURM here ({' and '.join(missing)} not on PATH): submit from a "
                       "cluster's login node, or run the sweep on this machine with launcher=local")
            journal.fail(str(self.config.hydra.sweep.dir), message, unlaunched=True)
            raise ConfigError(message)
        return super().launch(job_overrides, initial_job_idx)


class LocalLauncher(_RecordsFailure, submitit_launcher.LocalLauncher):
    """``launcher=local``: submitit's local launcher; a launch that fails marks the sweep failed."""
