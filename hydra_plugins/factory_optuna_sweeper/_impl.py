"""The Optuna sweeper's work: it asks Optuna for trials and launches them through Hydra's launcher.

Trial ``n`` runs as job ``n`` of the sweep: its run directory is ``<sweep dir>/<n>_<sweep id>``
(``hydra.sweep.subdir``) and its entry in ``sweep.json`` is number ``n``. The study lives in persistent storage (a journal file
in the sweep directory unless ``storage`` says otherwise), which is what makes two things
work: jobs in other processes report intermediate metrics to their trial (pruning), and an
interrupted sweep continues (``resume=true``) from the trials already finished.
"""
from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import optuna
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, flag_override

from factory.errors import ConfigError
from factory.sweeps import journal
from factory.sweeps.callback import SWEEPER_OVERRIDES, command_line, quoted, run_status
from factory.sweeps.outcome import fail_sweep
from factory.sweeps.trial import JOURNAL_SUFFIX, open_storage
from hydra_plugins.factory_optuna_sweeper._search_space import as_override, split

log = logging.getLogger(__name__)
TrialState = optuna.trial.TrialState


class OptunaSweeperImpl(Sweeper):
    """See ``config.OptunaSweeperConf`` for the arguments."""

    def __init__(self, sampler: Any, pruner: Any, direction: str | None, storage: str | None,
                 study_name: str | None, n_trials: int, n_jobs: int, max_failure_rate: float,
                 params: DictConfig | None, resume: bool) -> None:
        self.sampler, self.pruner = _built(sampler) or optuna.samplers.TPESampler(), _built(pruner)
        self.direction, self.storage, self.study_name = direction, storage, study_name
        self.n_trials, self.n_jobs, self.max_failure_rate = n_trials, n_jobs, max_failure_rate
        self.params = dict(params or {})
        self.resume = resume
        for key, value, ok in (("n_trials", n_trials, n_trials >= 1), ("n_jobs", n_jobs, n_jobs >= 1),
                               ("max_failure_rate", max_failure_rate, 0 <= max_failure_rate <= 1)):
            if not ok:
                raise ConfigError(f"hydra.sweeper.{key}: {value} is out of range")

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)

    def sweep(self, arguments: list[str]) -> list:
        cfg = self.config
        overrides = [f"{k}={v}" for k, v in (cfg.get("search_space") or {}).items()]
        overrides += [f"{k}={v}" for k, v in self.params.items()]
        overrides += list(arguments)
        space, fixed = split(overrides)
        if not space:
            raise ConfigError("hydra.sweeper.params: no search space (set search_space in the experiment, "
                              "hydra.sweeper.params, or sweep a key on the command line, e.g. "
                              "model.optimizer.lr='tag(log, interval(1e-4, 1e-1))')")
        direction = self.direction or ("maximize" if cfg.monitor.mode == "max" else "minimize")
        study_name = self.study_name or f"{cfg.task_name}-{_digest(sorted(overrides))}"
        sweep_dir = self.sweep_dir = self._sweep_dir(study_name)
        from filelock import FileLock, Timeout

        try:  # one sweeper per sweep directory: a second one (or a resume while it runs) is refused
            with FileLock(str(sweep_dir / ".sweeper.lock"), timeout=0):
                return self._run_study(study_name, direction, space, fixed, sweep_dir)
        except Timeout:
            raise ConfigError(f"hydra.sweeper.resume: {sweep_dir} is being swept by another process right now")

    def _run_study(self, study_name: str, direction: str, space: dict, fixed: dict[str, str],
                   sweep_dir: Path) -> list:
        storage = self.storage or str(sweep_dir / f"optuna{JOURNAL_SUFFIX}")
        study = optuna.create_study(study_name=study_name, storage=open_storage(storage), sampler=self.sampler,
                                    pruner=self.pruner, direction=direction, load_if_exists=True)
        if study.trials and not self.resume:
            raise ConfigError(f"hydra.sweeper.study_name: study {study_name!r} in {storage} already has "
                              f"{len(study.trials)} trials: add hydra.sweeper.resume=true to continue it, "
                              "or name a new study")
        if study.trials:  # a seeded sampler would start its random stream over and repeat finished trials
            self.sampler.reseed_rng()
        journal.start(sweep_dir, kind="optuna", command=command_line(), metric=self.config.monitor.metric,
                      mode="max" if direction == "maximize" else "min",
                      study={"name": study_name, "storage": storage, "direction": direction,
                             "sampler": type(self.sampler).__name__,
                             "pruner": type(self.pruner).__name__ if self.pruner else None,
                             "n_trials": self.n_trials, "search_space": {k: str(v) for k, v in space.items()}})
        self._mark_interrupted(study, study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)),
                               "the sweep stopped before this trial finished; resume runs another")
        done = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                or (t.state == TrialState.FAIL and not t.user_attrs.get("interrupted"))]
        log.info("Optuna study %s (%s, %s): %d of %d trials done; sweep dir %s", study_name, direction,
                 type(self.sampler).__name__, len(done), self.n_trials, sweep_dir)
        returns: list = []
        while len(done) < self.n_trials:
            batch = [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - len(done)))]
            jobs = [self._job_overrides(trial, fixed, storage, study_name, sweep_dir) for trial in batch]
            run_dirs = self._validate(study, batch, jobs)
            for trial, job, run_dir in zip(batch, jobs, run_dirs):
                journal.update_trial(sweep_dir, trial.number, status="running", params=dict(trial.params),
                                     overrides=[o for o in job if not o.startswith((*SWEEPER_OVERRIDES, "hydra."))],
                                     run_dir=str(run_dir), run_id=run_dir.name)
            results = self._launch(batch, jobs)
            failures = sum(self._tell(study, trial, result, sweep_dir, run_dir)
                           for trial, result, run_dir in zip(batch, results, run_dirs))
            returns.extend(results)
            done.extend(batch)
            if failures / len(batch) > self.max_failure_rate:
                journal.finish(sweep_dir, "failed")
                fail_sweep(f"sweep {sweep_dir}: stopped after {len(done)} trials: {failures} of {len(batch)} "
                           f"in a batch failed, above hydra.sweeper.max_failure_rate={self.max_failure_rate}")
                return returns
        journal.finish(sweep_dir, "completed")
        return returns

    def _sweep_dir(self, study_name: str) -> Path:
        """This sweep's directory: a new one, or with ``resume`` the newest unfinished one of
        the same study (then every later use of ``hydra.sweep.dir`` points there)."""
        sweep_dir = Path(self.config.hydra.sweep.dir).resolve()
        if self.resume:
            previous = _unfinished_sweep(sweep_dir.parent, study_name)
            if previous is None:
                log.info("resume: no unfinished sweep of study %s under %s; starting a new one",
                         study_name, sweep_dir.parent)
            else:
                log.info("resume: continuing %s", previous)
                sweep_dir = previous
                with flag_override(self.config, ["readonly", "struct"], [False, False]):
                    self.config.hydra.sweep.dir = str(sweep_dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        return sweep_dir

    def _mark_interrupted(self, study: optuna.Study, trials: Sequence, reason: str) -> None:
        """Fail ``trials`` as interrupted: recorded, but not counted against ``n_trials``."""
        for trial in trials:
            if isinstance(trial, optuna.Trial):
                trial.set_user_attr("interrupted", True)
            else:  # a FrozenTrial read back from storage: Optuna has no public setter for those
                study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
            study.tell(trial.number, state=TrialState.FAIL)
            journal.update_trial(self.sweep_dir, trial.number, status="interrupted", finished_at=journal.now(),
                                 error=reason)

    def _job_overrides(self, trial: optuna.Trial, fixed: dict[str, str], storage: str, study_name: str,
                       sweep_dir: Path) -> list[str]:
        sampled = [as_override(key, value) for key, value in trial.params.items()]
        link = f"storage:{quoted(storage)},study:{quoted(study_name)},number:{trial.number}"
        ref = [f"trial={{{link},prune:{str(self.pruner is not None).lower()}}}"]
        if self.pruner is not None:  # the job reports each epoch to its trial and stops when the pruner says so
            ref.append(f"+callbacks.optuna_pruning={{_target_:factory.sweeps.trial.OptunaPruning,{link},"
                       "monitor:${monitor.metric}}")
        # The resolved sweep dir, so every job lands in it (a resumed one included).
        return [*fixed.values(), *sampled, *ref, f"hydra.sweep.dir={quoted(str(sweep_dir))}"]

    def _validate(self, study: optuna.Study, batch: list, jobs: list[list[str]]) -> list[Path]:
        """Compose and check each job's config before launching: a bad value fails the sweep
        now, in one line, not every trial later (possibly on a cluster).

        Returns:
            Each job's run directory, as its job will resolve it (``hydra.sweep.subdir``).
        """
        from hydra.errors import HydraException
        from omegaconf import open_dict, read_write
        from omegaconf.errors import OmegaConfBaseException

        from factory.config import validate
        from factory.config.hydra_errors import describe

        run_dirs = []
        for trial, job in zip(batch, jobs):
            try:
                job_cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(job))
                validate(job_cfg, root="train")
                with read_write(job_cfg.hydra), open_dict(job_cfg.hydra):
                    job_cfg.hydra.job.num = trial.number
                run_dirs.append(Path(str(job_cfg.hydra.sweep.dir)).resolve() / str(job_cfg.hydra.sweep.subdir))
            except (ConfigError, HydraException, OmegaConfBaseException) as e:
                message = str(e) if isinstance(e, ConfigError) else describe(e)
                self._mark_interrupted(study, batch, f"not launched: trial {trial.number}'s config is invalid")
                journal.finish(self.sweep_dir, "failed")
                sampled = " ".join(as_override(key, value) for key, value in trial.params.items())
                raise ConfigError(f"trial {trial.number} ({sampled}): {message}") from e
        return run_dirs

    def _launch(self, batch: list, jobs: list[list[str]]) -> list:
        """Launch a batch as Hydra jobs numbered like their trials (job n runs in ``<sweep dir>/<n>_<sweep id>``)."""
        results: list = []
        start = 0
        for end in range(1, len(batch) + 1):  # runs of consecutive trial numbers, one launch each
            if end == len(batch) or batch[end].number != batch[end - 1].number + 1:
                results += self.launcher.launch(jobs[start:end], initial_job_idx=batch[start].number)
                start = end
        return results

    def _tell(self, study: optuna.Study, trial: optuna.Trial, result: Any, sweep_dir: Path, run_dir: Path) -> bool:
        """Record one finished job in the study and the journal; True when it failed."""
        value = None
        try:
            value = result.return_value
        except Exception:  # noqa: BLE001: the job's own error; its run.json and log have it
            pass
        value = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
        status = run_status(run_dir)
        if status == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        elif value is not None and status in ("completed", None):
            study.tell(trial, value)
            status = "completed"
        else:  # an error, no metric, or a NaN/inf metric
            study.tell(trial, state=TrialState.FAIL)
            status = "failed"
        journal.update_trial(sweep_dir, trial.number, status=status, finished_at=journal.now(), value=value)
        return status == "failed"


def _built(node: Any) -> Any:
    """Hydra instantiates nested ``_target_`` nodes already; accept a plain dict too."""
    if isinstance(node, dict) and "_target_" in node:
        return instantiate(node)
    if isinstance(node, DictConfig):
        return instantiate(OmegaConf.to_container(node, resolve=True))
    return node


def _digest(items: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(items).encode()).hexdigest()[:8]


def _unfinished_sweep(parent: Path, study_name: str) -> Path | None:
    """The newest sweep directory under ``parent`` whose journal has this study, not completed."""
    candidates = []
    for file in parent.glob(f"*/{journal.JOURNAL}"):
        try:
            record = journal.read(file.parent)
        except ConfigError:
            continue
        if (record.get("study") or {}).get("name") == study_name and record.get("status") != "completed":
            candidates.append((record.get("created_at", ""), file.parent))
    return max(candidates)[1] if candidates else None
