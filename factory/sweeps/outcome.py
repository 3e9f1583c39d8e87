"""What a sweep's jobs and callbacks report back to the process that runs the sweep.

Hydra's callbacks cannot raise (it turns their errors into warnings), and a failed trial
must not end the sweep: the failure is kept here, and ``factory.cli.run_cli`` exits 1 with
it once every trial has run.
"""
from __future__ import annotations

from factory.config.runmode import in_sweep

_outcome: dict[str, str] = {}


def record_job_error(error: BaseException) -> None:
    """Keep the one-line error of the sweep job that just failed in this process."""
    _outcome["job_error"] = f"{type(error).__name__}: {error}".strip().splitlines()[0]


def pop_job_error() -> str | None:
    """The one-line error of the sweep job that just failed in this process, once."""
    return _outcome.pop("job_error", None)


def fail_sweep(message: str) -> None:
    """Make ``run_cli`` exit 1 with ``message`` once the sweep has finished (the first reason wins)."""
    _outcome.setdefault("sweep_failure", message)


def sweep_failure() -> str | None:
    """Why the sweep that just finished failed, if it did."""
    return _outcome.get("sweep_failure")


__all__ = ["fail_sweep", "in_sweep", "pop_job_error", "record_job_error", "sweep_failure"]
