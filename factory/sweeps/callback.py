"""A Hydra callback that keeps ``sweep.json`` for every multirun, grid or Optuna.

Registered in ``conf/hydra/default.yaml``. Job hooks run where the job runs (this process
for the basic launcher, a worker for submitit), so each trial records its own run directory
and outcome; the sweep-level hooks run in the process that launched the sweep. Factory's
Optuna sweeper writes the sweep-level entries itself (study, parameters, pruning).
"""
from __future__ import annotations

import json
import logging
import math
import shlex
import sys
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from factory import redact
from factory.rundir.layout import MANIFEST
from factory.sweeps import journal
from factory.sweeps.outcome import fail_sweep, in_sweep, pop_job_error

log = logging.getLogger(__name__)

#: ``hydra.sweeper._target_`` of factory's Optuna sweeper (it keeps the sweep-level entries).
OPTUNA_SWEEPER = "hydra_plugins.factory_optuna_sweeper.sweeper.OptunaSweeper"
#: Overrides that sweeper adds to each job to link it to its trial: not the trial's own settings.
SWEEPER_OVERRIDES = ("trial=", "+callbacks.optuna_pruning=")


def command_line() -> str:
    return redact.text(shlex.join(["python", *sys.argv]))  # a URL's password never reaches sweep.json


def uses_factory_optuna(config: DictConfig) -> bool:
    return config.hydra.sweeper.get("_target_") == OPTUNA_SWEEPER


def pin_sweep_dir(config: DictConfig) -> str:
    """Fix the sweep's directory and id in the primary config, for every job of the sweep.

    Hydra composes each job's config anew from the overrides and resolves
    ``hydra.sweep.dir`` there, so a sweep over a group that sets ``task_name``
    (``experiment=diagnosis,digits``) would spread its trials over several directories.
    The primary config's value (its ``task_name``: ``train`` for a group sweep) is added to
    the overrides every job is composed with; the sweep id, which names the trials
    (``<n>_<sweep id>``), is resolved here once and reaches each job through the resolver
    cache Hydra copies from the primary config (and submitit pickles with it).
    """
    from omegaconf import open_dict, read_write

    from factory.config.resolvers import sweep_id

    sweep_id(_root_=config)
    sweep_dir = str(config.hydra.sweep.dir)
    with read_write(config.hydra), open_dict(config.hydra):
        config.hydra.sweep.dir = sweep_dir
        config.hydra.overrides.hydra.append(f"hydra.sweep.dir={quoted(sweep_dir)}")
    return sweep_dir


def quoted(text: str) -> str:
    """``text`` as a quoted Hydra override value."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class SweepJournal(Callback):
    """Writes each trial of a multirun into ``<sweep dir>/sweep.json`` as it starts and ends."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        pin_sweep_dir(config)
        if not uses_factory_optuna(config):
            monitor = config.get("monitor") or {}
            journal.start(config.hydra.sweep.dir, kind="grid", command=command_line(),
                          metric=monitor.get("metric"), mode=monitor.get("mode", "min"),
                          swept=_swept_keys(list(config.hydra.overrides.task)))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not in_sweep():
            return
        run_dir = Path(config.hydra.runtime.output_dir).resolve()
        overrides = [o for o in config.hydra.overrides.task if not o.startswith(SWEEPER_OVERRIDES)]
        journal.update_trial(config.hydra.sweep.dir, int(config.hydra.job.num), status="running",
                             overrides=[redact.text(o) for o in overrides],  # no URL password in sweep.json
                             run_dir=str(run_dir), run_id=run_dir.name,
                             started_at=journal.now(), **_swept(config.hydra.sweep.dir, overrides))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if not in_sweep():
            return
        status, error = _outcome(Path(config.hydra.runtime.output_dir), job_return, pop_job_error())
        value = job_return._return_value if job_return.status == JobStatus.COMPLETED else None
        finite = isinstance(value, (int, float)) and math.isfinite(value)
        if status == "completed" and value is not None and not finite:
            status, error = "failed", f"the monitored metric is {value}"
        journal.update_trial(config.hydra.sweep.dir, int(config.hydra.job.num), status=status, error=error,
                             value=float(value) if finite else None, finished_at=journal.now())

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = config.hydra.sweep.dir
        if not uses_factory_optuna(config):
            journal.finish(sweep_dir, "completed")
        # Hydra turns an exception here into a warning: record the outcome first, then report.
        try:
            record = summarize(sweep_dir)
        except Exception as e:  # noqa: BLE001
            fail_sweep(f"sweep {sweep_dir}: its journal is unreadable: {e}")
            return
        failed = [t for t in record["trials"] if t["status"] == "failed"]
        if failed:  # the others ran to the end; the exit code still says not all went well
            first = failed[0]
            fail_sweep(f"sweep {sweep_dir}: {len(failed)} of {len(record['trials'])} trials failed "
                       f"(trial {first['number']}: {first.get('error') or 'see its run.json'})")
        if config.get("report") or config.get("reports"):  # report=sweep_report: once, on the whole sweep
            from factory.reports import run_reports_after_sweep

            try:
                run_reports_after_sweep(config, sweep_dir)
            except Exception as e:  # noqa: BLE001: a report never fails the sweep it describes
                log.error("sweep reports on %s failed: %s", sweep_dir, e)


def summarize(sweep_dir: str | Path) -> dict[str, Any]:
    """Log the sweep's outcome in one line per fact; returns the journal."""
    record = journal.read(sweep_dir)
    counts: dict[str, int] = {}
    for trial in record["trials"]:
        counts[trial["status"]] = counts.get(trial["status"], 0) + 1
    log.info("sweep %s: %s", sweep_dir, ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no trials")
    if record.get("best"):
        best = record["best"]
        log.info("best trial %s: %s = %s (%s)", best["number"], record["objective"]["metric"], best["value"],
                 " ".join(best["overrides"] or []))
    return record


def _swept(sweep_dir: str, overrides: list[str]) -> dict[str, Any]:
    """``{"params": {key: value}}`` for the keys a grid sweep varies (Optuna's sweeper sets its own)."""
    swept = set(journal.read(sweep_dir).get("swept") or [])
    if not swept:
        return {}
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return {"params": {o.get_key_element(): o.value() for o in parsed if o.get_key_element() in swept}}


def _swept_keys(overrides: list[str]) -> list[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return [o.get_key_element() for o in OverridesParser.create().parse_overrides(overrides) if o.is_sweep_override()]


def _run_record(run_dir: Path) -> dict | None:
    manifest = run_dir / MANIFEST
    return json.loads(manifest.read_text()) if manifest.is_file() else None


def run_status(run_dir: Path) -> str | None:
    """``status`` from a trial's ``run.json``; ``None`` when the job never wrote one."""
    record = _run_record(run_dir)
    return record.get("status") if record else None


def _outcome(run_dir: Path, job_return: JobReturn, job_error: str | None) -> tuple[str, str | None]:
    """(status, one-line error): the run's own record first (it knows ``pruned``), then the
    error ``factory.cli.job`` caught (``factory.sweeps.outcome``), then Hydra's."""
    record = _run_record(run_dir)
    if record is not None:
        error = record.get("error")
        error = str(error).strip().splitlines()[0] if error else None  # one line in the sweep's summary
        status = record.get("status")
        if status in journal.FINISHED:
            return status, error
        if status:  # running / interrupted: the job ended without finishing its run
            return "failed", error or job_error or f"run ended with status {status}"
    if job_error:
        return "failed", job_error
    if job_return.status == JobStatus.FAILED:
        exc = job_return._return_value
        return "failed", f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    return "completed", None
