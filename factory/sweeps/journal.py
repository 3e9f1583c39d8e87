"""``sweep.json``: every trial of a sweep, its status, metric and run directory, and the best.

Written by Hydra's sweep (a callback, for plain ``-m`` grids) and by factory's Optuna sweeper
as trials start and finish. Jobs may run in other processes or on other nodes (submitit), so
each change is a read-modify-write under a file lock beside the journal, then an atomic rename:
a reader never sees half a file and two jobs never lose each other's update.

Shape (``version`` 1)::

    {"version": 1, "sweep_dir": "...", "kind": "optuna" | "grid", "command": "...",
     "objective": {"metric": "val/pr_auc", "mode": "max"}, "status": "running" | "completed" | "failed",
     "error": "..." (a failed launch only),
     "study": {"name": ..., "storage": ...} | null, "created_at": ..., "updated_at": ...,
     "trials": [{"number": 0, "overrides": [...], "params": {...}, "status": "running" | "completed"
                 | "failed" | "pruned" | "interrupted", "value": 0.41, "run_dir": ..., "run_id": ..., "error": null,
                 "started_at": ..., "finished_at": ...}],
     "best": {"number": ..., "value": ..., "overrides": [...], "params": {...}, "run_dir": ...} | null}
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from factory import files
from factory.errors import ConfigError

JOURNAL = "sweep.json"
VERSION = 1
# Trial states that will not change again; ``interrupted``: the sweep was killed while it ran.
FINISHED = ("completed", "failed", "pruned", "interrupted")


now = files.utc_stamp  # the time trials record (the sweeper and its callback stamp them too)


def path(sweep_dir: str | Path) -> Path:
    return Path(sweep_dir) / JOURNAL


def read(sweep_dir: str | Path) -> dict[str, Any]:
    """The journal of ``sweep_dir``.

    Raises:
        ConfigError: no ``sweep.json`` there, or it is not a sweep journal.
    """
    file = path(sweep_dir)
    if not file.is_file():
        raise ConfigError(f"{sweep_dir}: no {JOURNAL} (not a sweep directory)")
    try:
        journal = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{file}: not readable as JSON ({e.msg} at line {e.lineno})") from e
    if not isinstance(journal, dict) or not isinstance(journal.get("trials"), list):
        raise ConfigError(f"{file}: not a sweep journal (no trials list)")
    if journal.get("version", VERSION) > VERSION:
        raise ConfigError(f"{file}: version {journal['version']}; this factory reads version {VERSION}")
    for i, trial in enumerate(journal["trials"]):
        if not isinstance(trial, dict) or not isinstance(trial.get("number"), int):
            raise ConfigError(f"{file}: trials[{i}] has no trial number")
    return journal


@contextmanager
def editing(sweep_dir: str | Path) -> Iterator[dict[str, Any]]:
    """Lock the journal, yield it (empty if new) for changes, then write it atomically."""
    file = path(sweep_dir)
    with files.locked(str(file) + ".lock", timeout=120, mode=0o666):
        journal = json.loads(file.read_text()) if file.is_file() else {}
        yield journal
        journal["updated_at"] = now()
        journal["best"] = best_trial(journal)
        files.write_json(file, journal)


def start(sweep_dir: str | Path, *, kind: str, command: str, metric: str, mode: str,
          study: dict[str, Any] | None = None, swept: list[str] | None = None) -> None:
    """Create the journal, or mark a resumed one running again (its trials are kept).

    ``swept``: the keys a grid sweep varies (each trial's ``params`` then holds their values).
    """
    with editing(sweep_dir) as journal:
        if swept is not None:
            journal["swept"] = swept
        journal.setdefault("version", VERSION)
        journal["sweep_dir"] = str(Path(sweep_dir).resolve())
        journal["kind"] = kind
        journal.setdefault("command", command)
        journal["objective"] = {"metric": metric, "mode": mode}
        journal["status"] = "running"
        journal["study"] = study
        journal.setdefault("created_at", now())
        journal.setdefault("trials", [])


def update_trial(sweep_dir: str | Path, number: int, **fields: Any) -> None:
    """Merge ``fields`` into trial ``number`` (created if new); ``None`` values are kept out
    unless the key is new, so a late writer does not erase what an earlier one knew."""
    with editing(sweep_dir) as journal:
        trials = journal.setdefault("trials", [])
        trial = next((t for t in trials if t["number"] == number), None)
        if trial is None:
            trial = {"number": number, "overrides": [], "params": {}, "status": "running", "value": None,
                     "run_dir": None, "run_id": None, "error": None, "started_at": None, "finished_at": None}
            trials.append(trial)
            trials.sort(key=lambda t: t["number"])
        for key, value in fields.items():
            if value is not None or key not in trial:
                trial[key] = value


def finish(sweep_dir: str | Path, status: str) -> None:
    """Mark the sweep ``completed`` or ``failed``."""
    with editing(sweep_dir) as journal:
        journal["status"] = status


def fail(sweep_dir: str | Path, error: str, unlaunched: bool = False) -> None:
    """Mark the sweep ``failed`` with ``error`` (one line), e.g. when its launcher failed.

    ``unlaunched``: no job started, so trials still ``running`` (recorded before launch)
    become ``interrupted``, ``not launched``.
    """
    with editing(sweep_dir) as journal:
        journal.setdefault("trials", [])
        journal["status"], journal["error"] = "failed", error
        for trial in journal["trials"]:
            if unlaunched and trial.get("status") == "running":
                trial.update(status="interrupted", error=f"not launched: {error}", finished_at=now())


def best_trial(journal: dict[str, Any]) -> dict[str, Any] | None:
    """The completed trial with the best value for the journal's objective, or ``None``."""
    mode = (journal.get("objective") or {}).get("mode", "min")
    done = [t for t in journal.get("trials", []) if t.get("status") == "completed"
            and isinstance(t.get("value"), (int, float)) and math.isfinite(t["value"])]
    if not done:
        return None
    best = (max if mode == "max" else min)(done, key=lambda t: t["value"])
    return {key: best.get(key) for key in ("number", "value", "overrides", "params", "run_dir", "run_id")}
