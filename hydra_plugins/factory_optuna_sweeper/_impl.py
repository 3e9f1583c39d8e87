"""The Optuna sweeper's work: it asks Optuna for trials and launches them through Hydra's launcher.

Trial ``n`` runs as job ``n`` of the sweep: its run directory is ``<sweep dir>/<n>`` and its
entry in ``sweep.json`` is number ``n``. The study lives in persistent storage (a journal file
in the sweep directory unless ``storage`` says otherwise), which is what makes two things
work: jobs in other processes report intermediate metrics to their trial (pruning), and an
interrupted sweep continues (``resume=true``) from the trials already finished.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Sequence

import optuna
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, flag_override

from factory.errors import ConfigError, FactoryError
from factory.sweeps import journal
from factory.sweeps.callback import command_line
from factory.sweeps.trial import JOURNAL_SUFFIX, open_storage
from hydra_plugins.factory_optuna_sweeper._search_space import as_override, split

log = logging.getLogger(__name__)
TrialState = optuna.trial.TrialState
# Not passed on to trials: they belong to the sweep, not to the training config.
SWEEP_ONLY = ("hydra.sweeper.", "hydra.sweep.", "hydra/sweeper")


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
        overrides += [a for a in arguments if not a.startswith(SWEEP_ONLY)]
        space, fixed = split(overrides)
        if not space:
            raise ConfigError("hydra.sweeper.params: no search space (set search_space in the experiment, "
                              "hydra.sweeper.params, or sweep a key on the command line, e.g. "
                              "model.optimizer.lr='tag(log, interval(1e-4, 1e-1))')")
        direction = self.direction or ("maximize" if cfg.monitor.mode == "max" else "minimize")
        study_name = self.study_name or f"{cfg.task_name}-{_digest(sorted(overrides))}"
        sweep_dir = self.sweep_dir = self._sweep_dir(study_name)
        storage = self.storage or str(sweep_dir / f"optuna{JOURNAL_SUFFIX}")
        study = optuna.create_study(study_name=study_name, storage=open_storage(storage), sampler=self.sampler,
                                    pruner=self.pruner, direction=direction, load_if_exists=True)
        journal.start(sweep_dir, kind="optuna", command=command_line(), metric=cfg.monitor.metric,
                      mode="max" if direction == "maximize" else "min",
                      study={"name": study_name, "storage": storage, "direction": direction,
                             "sampler": type(self.sampler).__name__,
                             "pruner": type(self.pruner).__name__ if self.pruner else None,
                             "n_trials": self.n_trials, "search_space": {k: str(v) for k, v in space.items()}})
        self._fail_interrupted(study, sweep_dir)
        done = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                or (t.state == TrialState.FAIL and not t.user_attrs.get("interrupted"))]
        log.info("Optuna study %s (%s, %s): %d of %d trials done; sweep dir %s", study_name, direction,
                 type(self.sampler).__name__, len(done), self.n_trials, sweep_dir)
        returns: list = []
        while len(done) < self.n_trials:
            batch = [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - len(done)))]
            jobs = [self._job_overrides(trial, fixed, storage, study_name, sweep_dir) for trial in batch]
            self._validate(batch, jobs)
            for trial, job in zip(batch, jobs):
                journal.update_trial(sweep_dir, trial.number, status="running", params=dict(trial.params),
                                     overrides=[o for o in job if not o.startswith(("trial=", "hydra."))],
                                     run_dir=str(sweep_dir / str(trial.number)), run_id=str(trial.number))
            results = self.launcher.launch(jobs, initial_job_idx=batch[0].number)
            failures = sum(self._tell(study, trial, result, sweep_dir) for trial, result in zip(batch, results))
            returns.extend(results)
            done.extend(batch)
            if failures / len(batch) > self.max_failure_rate:
                journal.finish(sweep_dir, "failed")
                raise FactoryError(f"sweep {sweep_dir}: {failures} of {len(batch)} trials in a batch failed, "
                                   f"above hydra.sweeper.max_failure_rate={self.max_failure_rate}")
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
        return sweep_dir

    def _fail_interrupted(self, study: optuna.Study, sweep_dir: Path) -> None:
        """Trials left running by a killed sweep are failed, so the budget counts them out."""
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
            study.tell(trial.number, state=TrialState.FAIL)
            journal.update_trial(sweep_dir, trial.number, status="interrupted", finished_at=journal.now(),
                                 error="the sweep stopped before this trial finished; resume runs another")

    def _job_overrides(self, trial: optuna.Trial, fixed: dict[str, str], storage: str, study_name: str,
                       sweep_dir: Path) -> list[str]:
        sampled = [as_override(key, value) for key, value in trial.params.items()]
        ref = (f"trial={{storage:{_quoted(storage)},study:{_quoted(study_name)},number:{trial.number},"
               f"prune:{str(self.pruner is not None).lower()}}}")
        # The resolved sweep dir, so every job lands in it (a resumed one included).
        return [*fixed.values(), *sampled, ref, f"hydra.sweep.dir={_quoted(str(sweep_dir))}"]

    def _validate(self, batch: list, jobs: list[list[str]]) -> None:
        """Compose and check each job's config before launching: a typo'd key fails the sweep
        now, in one line, not every trial later (possibly on a cluster)."""
        from factory.config import validate

        for trial, job in zip(batch, jobs):
            config = self.hydra_context.config_loader.load_sweep_config(self.config, list(job))
            try:
                validate(config, root="train")
            except ConfigError as e:
                for pending in batch:
                    pending.study.tell(pending, state=TrialState.FAIL)
                journal.finish(self.sweep_dir, "failed")
                sampled = " ".join(as_override(key, value) for key, value in trial.params.items())
                raise ConfigError(f"trial {trial.number} ({sampled}): {e}") from e

    def _tell(self, study: optuna.Study, trial: optuna.Trial, result: Any, sweep_dir: Path) -> bool:
        """Record one finished job in the study and the journal; True when it failed."""
        value = None
        try:
            value = result.return_value
        except Exception:  # noqa: BLE001: the job's own error; its run.json and log have it
            pass
        status = _run_status(sweep_dir / str(trial.number))
        if status == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        elif isinstance(value, (int, float)) and status in ("completed", None):
            study.tell(trial, float(value))
        else:
            study.tell(trial, state=TrialState.FAIL)
            status = "failed"
        status = status or "completed"
        journal.update_trial(sweep_dir, trial.number, status=status, finished_at=journal.now(),
                             value=float(value) if isinstance(value, (int, float)) else None)
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


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


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


def _run_status(run_dir: Path) -> str | None:
    import json

    manifest = run_dir / "run.json"
    return json.loads(manifest.read_text()).get("status") if manifest.is_file() else None
