"""Cron schedules for reports: which are due, run them, remember when they last ran.

``croniter`` parses the expressions (standard 5-field cron, local time). Two ways to run:

- ``run_due(...)`` (``scripts/schedule.py --once``): run what is due now and return; for
  cron, systemd timers and CI. A report is due when one of its cron ticks fell in
  ``(last run, now]``; a report never run before is due when a tick fell in the last
  minute. Last runs are kept in ``reports/.schedule-state.json`` (written atomically, under
  a file lock: each crontab line is its own process).
- ``serve(...)`` (``scripts/schedule.py``): the same in the foreground, sleeping until
  the next tick, each report in its own thread.

A report runs at most once at a time and once per tick (a lock file per report, so this
holds across processes too; whether it is due is checked again under it); one failing
report does not stop the others. Each runs as
``scripts/report.py`` in a subprocess, recorded in the index with trigger ``schedule``.
``crontab_lines`` gives cron the same path: ``scripts/schedule.py --once --report <name>``
(lock, state, trigger), logging to ``reports/<name>/schedule.log``. Clock, sleep and runner
are injected so tests need no waiting.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterator, Sequence

from factory import files
from factory.rundir.provenance import CODE_DIR

log = logging.getLogger(__name__)

STATE = ".schedule-state.json"
#: Where a crontab line appends a report's output, under ``reports/<name>/``.
LOG = "schedule.log"
#: Set for ``scripts/report.py`` by the scheduler: the trigger the index records.
TRIGGER_ENV = "FACTORY_REPORT_TRIGGER"
#: How far back a never-run report looks for a tick (one cron minute).
FIRST_RUN_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class Scheduled:
    """A report with a cron schedule (declared in ``path``)."""

    name: str
    schedule: str
    path: Path | None = field(default=None, compare=False)


Clock = Callable[[], datetime]
#: Runs one report by name; returns True when it completed.
Runner = Callable[[str], bool]


def local_now() -> datetime:
    return datetime.now().astimezone()


def _where(path: Path) -> Path:
    """``path`` relative to the checkout when inside it (``conf/report/x.yaml``)."""
    try:
        return path.relative_to(CODE_DIR)
    except ValueError:
        return path


@dataclass(frozen=True)
class BadReport:
    """A report whose schedule cannot run: skipped, named with its file."""

    name: str
    path: Path
    error: str
    #: The file declares no schedule (asked for by name).
    unscheduled: bool = False

    def __str__(self) -> str:
        return f"report {self.name} ({_where(self.path)}): {self.error}; skipped"


def scheduled_reports(names: Sequence[str] | None = None,
                      report_dir: Path | None = None) -> tuple[list[Scheduled], list[BadReport]]:
    """Reports in conf/report/ (or ``report_dir``) that declare a ``schedule`` (all, or ``names``).

    Each report is checked on its own (cron expression, required parameters, notebook):
    a bad one is returned in the second list, with why, and does not hide the others.

    Returns:
        The runnable schedules, and the reports that were skipped.
    """
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from factory.errors import FactoryError
    from factory.reports.spec import available, report_file, spec_from_file

    found, bad = [], []
    for name in names or available(report_dir):
        path = report_file(name, report_dir)
        try:
            declared = OmegaConf.load(path).get("schedule") if path.exists() else None
            if declared is None and not names:
                continue  # discovering: reports without a schedule are not ours
            spec = spec_from_file(name, report_dir=report_dir)  # checks everything, the cron line included
            if not spec.schedule:
                bad.append(BadReport(name, path, "no schedule (set schedule: \"<cron>\" in the file)", True))
                continue
        except (FactoryError, OmegaConfBaseException, yaml.YAMLError, OSError) as e:
            lines = str(e).strip().splitlines()
            lines = lines[:1] if isinstance(e, OmegaConfBaseException) else lines  # the rest is object dumps
            bad.append(BadReport(name, path, "; ".join(lines) or type(e).__name__))
            continue
        found.append(Scheduled(name, spec.schedule, path))
    return found, bad


#: What a stale crontab line asks for.
REGENERATE = "regenerate the crontab (scripts/schedule.py --crontab)"


def stale_crontab(reports: Sequence[Scheduled], bad: Sequence[BadReport],
                  printed_for: str | None = None) -> dict[str, str]:
    """Why a ``--once`` run from a crontab line cannot run its report as the line says: ``{name: why}``.

    A report named (``--report``) whose file has no schedule now; with ``printed_for`` (the
    schedule the line was printed for, ``--expected-schedule``), one whose schedule changed
    since: its ticks are not the line's, so it would quietly never be due.
    """
    stale = {}
    for report in bad:
        if report.unscheduled:
            if printed_for:
                why = f"has no schedule any more (this crontab line runs it at '{printed_for}'): {REGENERATE}"
            else:
                why = f"has no schedule (set schedule: \"<cron>\" in the file); if a crontab line runs it, {REGENERATE}"
            stale[report.name] = f"report {report.name} ({_where(report.path)}) {why}"
    for report in reports:
        if printed_for and report.schedule.split() != printed_for.split():
            where = f" ({_where(report.path)})" if report.path else ""
            stale[report.name] = (f"report {report.name}{where} is scheduled at '{report.schedule}' now, this "
                                  f"crontab line at '{printed_for}': {REGENERATE}; not run")
    return stale


def last_tick(expression: str, now: datetime) -> datetime:
    """The latest tick of ``expression`` at or before ``now``."""
    from croniter import croniter

    # croniter's get_prev is strictly before its base: a tick exactly at `now` counts.
    return croniter(expression, now + timedelta(seconds=1)).get_prev(datetime)


def next_tick(expression: str, now: datetime) -> datetime:
    """The first tick of ``expression`` after ``now``."""
    from croniter import croniter

    return croniter(expression, now).get_next(datetime)


def is_due(expression: str, now: datetime, last_run: datetime | None) -> bool:
    """Whether a tick of ``expression`` fell in ``(last_run, now]`` (the last minute if never run)."""
    tick = last_tick(expression, now)
    return tick > (last_run if last_run is not None else now - FIRST_RUN_WINDOW)


def load_state(reports_dir: Path) -> dict[str, dict]:
    """``{report: {"last_run": iso time, "status": ...}}`` (written atomically: always whole)."""
    path = Path(reports_dir) / STATE
    return json.loads(path.read_text()) if path.exists() else {}


def _save_run(reports_dir: Path, name: str, started: datetime, ok: bool | None) -> None:
    # Each crontab line is its own process: only a file lock keeps two reports due in the same
    # minute from interleaving read-modify-write and losing one's record (left "running").
    with files.locked(Path(reports_dir) / f"{STATE}.lock"):
        state = load_state(reports_dir)
        state[name] = {"last_run": started.isoformat(), "status": {True: "completed", False: "failed",
                                                                   None: "running"}[ok]}
        files.write_json(Path(reports_dir) / STATE, state)


@contextlib.contextmanager
def report_lock(reports_dir: Path, name: str) -> Iterator[bool]:
    """Yield True if this process now holds ``name``'s run lock, False if a run holds it."""
    with files.try_locked(Path(reports_dir) / ".locks" / f"{name}.lock") as held:
        yield held


def run_one(report: Scheduled, reports_dir: Path, runner: Runner, now: datetime) -> bool | None:
    """Run one report under its lock if it is due at ``now``; record it.

    Returns:
        Whether it completed; None when skipped: a run of it is in progress, or one that
        finished since it was found due has already run this tick.
    """
    with report_lock(reports_dir, report.name) as held:
        if not held:
            log.warning("schedule: %s is still running; skipping this tick", report.name)
            return None
        # Checked again under the lock: due_reports read the state before a run holding it finished.
        if not _due(report, load_state(reports_dir), now):
            log.info("schedule: %s already ran for this tick; skipping", report.name)
            return None
        log.info("schedule: %s started (%s)", report.name, report.schedule)
        _save_run(reports_dir, report.name, now, None)
        try:
            ok = bool(runner(report.name))
        except Exception:  # noqa: BLE001  (one report's crash must not stop the others)
            log.exception("schedule: %s crashed", report.name)
            ok = False
        _save_run(reports_dir, report.name, now, ok)
        log.log(logging.INFO if ok else logging.ERROR, "schedule: %s %s", report.name,
                "completed" if ok else "failed")
        return ok


def _due(report: Scheduled, state: dict[str, dict], now: datetime) -> bool:
    last = state.get(report.name, {}).get("last_run")
    return is_due(report.schedule, now, datetime.fromisoformat(last) if last else None)


def due_reports(reports: Sequence[Scheduled], reports_dir: Path, now: datetime) -> list[Scheduled]:
    """The reports due at ``now``, as the state says before any of them runs."""
    state = load_state(reports_dir)
    return [report for report in reports if _due(report, state, now)]


def run_due(reports: Sequence[Scheduled], reports_dir: str | Path, runner: Runner,
            clock: Clock = local_now) -> dict[str, bool | None]:
    """Run every report due at ``clock()``, one after another; ``{name: completed?}``."""
    reports_dir = Path(reports_dir)
    now = clock()
    return {r.name: run_one(r, reports_dir, runner, now) for r in due_reports(reports, reports_dir, now)}


def serve(reports: Sequence[Scheduled], reports_dir: str | Path, runner: Runner, clock: Clock = local_now,
          sleep: Callable[[float], object] | None = None, stop: Callable[[], bool] = lambda: False,
          workers: int = 4) -> None:
    """Run reports on their schedules until ``stop()`` (or Ctrl-C).

    Due reports run in a pool of ``workers`` threads (each usually a subprocess), so a
    slow report does not delay the others; ``workers=0`` runs them inline, in order.
    """
    import time

    sleep = sleep or time.sleep
    reports_dir = Path(reports_dir)
    running: set[str] = set()
    guard = threading.Lock()

    def job(report: Scheduled, now: datetime) -> None:
        try:
            run_one(report, reports_dir, runner, now)
        finally:
            with guard:
                running.discard(report.name)

    with ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="report") as pool:
        while not stop():
            now = clock()
            for report in due_reports(reports, reports_dir, now):
                with guard:
                    if report.name in running:
                        log.warning("schedule: %s is still running; skipping this tick", report.name)
                        continue
                    running.add(report.name)
                if workers:
                    pool.submit(job, report, now)
                else:  # inline: one report at a time, in order (tests, tiny setups)
                    job(report, now)
            wake = min(next_tick(r.schedule, now) for r in reports)
            sleep(max(0.0, (wake - clock()).total_seconds()) + 0.05)


def trigger() -> str:
    """What started this ``scripts/report.py``: ``schedule`` under the scheduler, else ``manual``."""
    return os.environ.get(TRIGGER_ENV) or "manual"


def subprocess_runner(extra: Sequence[str] = (), cwd: str | Path | None = None) -> Runner:
    """Run ``scripts/report.py report=<name>`` in a subprocess (isolated; exit code is the result)."""
    def run(name: str) -> bool:
        command = [sys.executable, str(CODE_DIR / "scripts" / "report.py"), f"report={name}", *extra]
        done = subprocess.run(command, cwd=cwd, env={**os.environ, TRIGGER_ENV: "schedule"})
        return done.returncode == 0

    return run


#: Settings a crontab line carries over: cron starts commands with an almost empty environment.
CARRIED_ENV = ("FACTORY_ROOT", "FACTORY_CONFIG_DIR")


def crontab_lines(reports: Sequence[Scheduled], cwd: str | Path, reports_dir: str | Path = "reports") -> list[str]:
    """One crontab line per report: at its schedule, ``scripts/schedule.py --once --report <name>``
    from ``cwd`` (the scheduler's lock, state and trigger), appending its output to
    ``<reports_dir>/<name>/schedule.log``. Paths are absolute; the interpreter is this one (the venv's).
    The line carries its schedule (``--expected-schedule``): edited in the file since, the line
    says the crontab is stale (``stale_crontab``) instead of quietly finding nothing due.
    """
    script = CODE_DIR / "scripts" / "schedule.py"
    cwd = Path(cwd).absolute()
    env = " ".join(f"{k}={shlex.quote(str(Path(os.environ[k]).absolute()))}"
                   for k in CARRIED_ENV if os.environ.get(k))
    lines = []
    for r in reports:
        log_dir = (cwd / reports_dir / r.name).absolute()
        command = (f"cd {shlex.quote(str(cwd))} && mkdir -p {shlex.quote(str(log_dir))} && "
                   f"{env + ' ' if env else ''}{shlex.quote(sys.executable)} {shlex.quote(str(script))} "
                   f"--once --report {shlex.quote(r.name)} --expected-schedule {shlex.quote(r.schedule)} "
                   f">> {shlex.quote(str(log_dir / LOG))} 2>&1")
        # cron reads an unescaped % as a newline
        lines.append(f"{r.schedule} {command.replace('%', chr(92) + '%')}  # factory report {r.name}")
    return lines
