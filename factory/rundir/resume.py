"""``resume=auto``: which run a restarted command continues, and from which checkpoint.

Launching the same command again with ``resume=auto`` (after ``kill -9``, a crash, a
preemption or a SLURM requeue) continues the run in its own directory:

1. ``FACTORY_RUN_ID`` set: that directory (how the ranks of a multi-node job share one);
2. else under SLURM: ``slurm_<job id>`` (a requeued job keeps its id);
3. else the newest run under ``<output_dir>/<task_name>/`` whose ``config.yaml`` equals
   this config apart from ``resume`` and the run directory. If it is unfinished
   (``running``, ``failed``, ``interrupted``) and no live process holds it, it continues;
   if it completed, or nothing matches, a new run starts and one line says why.

A fixed directory (1, 2) that holds a finished run or another config's is refused with a
``ConfigError``, with or without ``resume=auto``, before anything is written into it: a
finished run is never overwritten (``factory.rundir.guard``).
The run continues from the newest of ``checkpoints/last.ckpt`` and Lightning's
``hpc_ckpt_*.ckpt``; with none, it starts over in the same directory. Only this module
and ``factory.config.resolvers`` take part before torch loads: nothing here imports it.
"""
from __future__ import annotations

import csv
import io
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from factory import files
from factory.console import notice
from factory.errors import ConfigError
from factory.rundir import manifest
from factory.rundir.layout import CSV_DIR, HISTORY, HISTORY_STASH as STASH, HPC_CHECKPOINTS, LOCK, last_checkpoint
from factory.rundir.guard import (AUTO, FINISHED, check_fixed_dir, differences, plain_config, refuse_taken,
                              run_status, task_dir_of)

__all__ = ["AUTO", "FINISHED", "Attempt", "auto_run_id", "begin", "differences", "finish_history", "held",
           "newest_checkpoint", "tracker_identity"]
#: Why resume=auto started a new run, by run id, for ``begin`` to print (same process).
_notes: dict[str, str] = {}


def auto_run_id(root: DictConfig) -> str:
    """The id of the run ``resume=auto`` continues, or a new id (rules 1-3 above).

    Called by the ``${factory.run_id:}`` resolver with the whole config (``_root_``); why
    it chose what it chose is kept for ``begin`` to print.
    """
    from factory.rundir.layout import fixed_run_id, new_run_id

    fixed = fixed_run_id() or (f"slurm_{os.environ['SLURM_JOB_ID']}" if os.environ.get("SLURM_JOB_ID") else None)
    if fixed:
        check_fixed_dir(root, fixed)
        return fixed
    found, note = _search(root)
    run_id = found or new_run_id()
    _notes[run_id] = note
    return run_id


def _search(root: DictConfig) -> tuple[str | None, str]:
    try:
        view = plain_config(root)
        task_dir = task_dir_of(view)
    except Exception as e:  # noqa: BLE001: a config that does not resolve fails later, with its key
        return None, f"resume=auto: could not read this config ({type(e).__name__}): starting a new run"
    for record_path in _newest_first(task_dir):
        run_dir = record_path.parent
        if differences(view, run_dir) != []:
            continue
        status = run_status(run_dir)
        if status in FINISHED:
            return None, f"resume=auto: the newest run of this config, {run_dir.name}, {status}: starting a new run"
        if held(run_dir):
            return None, f"resume=auto: {run_dir.name} is still running in another process: starting a new run"
        return run_dir.name, ""
    return None, f"resume=auto: no unfinished run of this config under {task_dir}: starting a new run"


@dataclass
class Attempt:
    """One launch of a run: its record (new or continued), what it resumes from, its lock."""

    record: manifest.RunRecord
    checkpoint: str | None = None
    _lock: Any = field(default=None, repr=False)

    def close(self) -> None:
        """Release the run directory for the next attempt (rank zero held it)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def begin(cfg: DictConfig, run_dir: Path, is_zero: bool) -> Attempt:
    """Start a run's record in ``run_dir``: a new one, or with ``resume=auto`` the one there, continued.

    Rank zero holds a lock on the directory until ``Attempt.close``, so that another
    ``resume=auto`` launch never joins a run that is alive. Continuing sets the record
    back to ``running``, counts the attempt, appends to ``resumes`` and stashes the
    metrics history (Lightning's CSV logger would truncate it) for ``finish_history``.

    Raises:
        ConfigError: ``run_dir`` holds a finished run, a run of another config, or a run
            that a live process holds (``refuse_taken``).
    """
    auto = cfg.get("resume") == AUTO
    taken = (run_dir / manifest.MANIFEST).is_file()
    if auto and taken:
        attempt = _continue(cfg, run_dir, manifest.load_record(run_dir))
        message = (f"resume=auto: continuing {run_dir} (attempt {attempt.record.attempt}) from "
                   f"{attempt.checkpoint or 'its start: it wrote no checkpoint'}")
    else:
        if taken and is_zero:  # a fixed directory (a path, a requeue): starts over only if unfinished, same config
            refuse_taken(cfg, run_dir, auto=False)
        attempt = Attempt(manifest.RunRecord.begin(run_dir, cfg.task_name, cfg.seed, cfg.tags))
        message = _notes.pop(run_dir.name, "") or f"resume=auto: nothing to continue in {run_dir}: starting a new run"
    if is_zero:
        attempt._lock = _hold(run_dir)
        if auto:
            _say(message)
        if attempt.record.attempt > 1:
            _stash_history(run_dir)
    return attempt


def _continue(cfg: DictConfig, run_dir: Path, previous: manifest.RunRecord) -> Attempt:
    refuse_taken(cfg, run_dir, auto=True)  # every rank: none joins a finished or foreign run
    checkpoint = newest_checkpoint(run_dir)
    previous.resumes.append({"at": files.utc_stamp(), "checkpoint": checkpoint, "previous_status": previous.status,
                             "previous_error": previous.error})
    previous.attempt += 1
    previous.status, previous.error, previous.ended_at, previous.duration_s = "running", None, None, None
    previous.resumed_from = checkpoint
    return Attempt(previous, checkpoint)


def tracker_identity(logger_cfg: DictConfig, run_dir: Path) -> dict[str, str]:
    """Constructor arguments that make every attempt of a run log to the same tracker run.

    wandb: an id derived from the run directory (its name, and a hash of its path so that
    sweep trials ``0``, ``1``... of different sweeps differ) with ``resume="allow"``, so the
    offline files of every attempt (``wandb/offline-run-<time>-<id>``) carry the same id.
    """
    if str(logger_cfg.get("_target_", "")).rsplit(".", 1)[-1] != "WandbLogger":
        return {}
    import hashlib

    name = re.sub(r"[^A-Za-z0-9_-]", "_", run_dir.name)[:48]
    digest = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:8]
    return {"id": f"{name}-{digest}", "resume": "allow"}


def newest_checkpoint(run_dir: Path) -> str | None:
    """The most recently written training checkpoint of a run: ``last.ckpt`` or an ``hpc_ckpt_*``.

    Lightning's SLURM auto-requeue writes ``hpc_ckpt_<n>.ckpt`` into the run directory;
    SIGTERM and epoch ends write ``checkpoints/last.ckpt``. DeepSpeed's are directories,
    dated by their newest file.
    """
    candidates = [last_checkpoint(run_dir), *run_dir.glob(HPC_CHECKPOINTS)]
    dated = [(_mtime(p), p) for p in candidates if p.exists()]
    return str(max(dated)[1]) if dated else None


def held(run_dir: Path) -> bool:
    """Whether a live process holds ``run_dir`` (its lock dies with it, ``kill -9`` included)."""
    if not (run_dir / LOCK).exists():
        return False
    try:
        files.lock(run_dir / LOCK, timeout=0).release()
    except TimeoutError:
        return True
    except OSError:  # a directory we cannot write: no run of ours is alive in it
        return False
    return False


def finish_history(run_dir: Path) -> None:
    """Put the stashed metrics history back in front of this attempt's rows in ``csv/metrics.csv``.

    Rows from the stash at or past the first step this attempt logged are dropped: the
    attempt repeated those steps from its checkpoint.
    """
    stash = run_dir / STASH
    if not stash.is_file():
        return
    old_keys, old = _read_csv(stash)
    new_keys, new = _read_csv(run_dir / HISTORY)
    first = min((_step(r) for r in new), default=float("inf"))
    rows = [r for r in old if _step(r) < first] + new
    keys = sorted(set(old_keys) | set(new_keys))  # as Lightning's CSV logger orders them
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys, restval="")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(run_dir / HISTORY, out.getvalue())
    (run_dir / HISTORY).chmod(stash.stat().st_mode & 0o777)  # as readable as Lightning left it, not mkstemp's 0600
    stash.unlink()


def _stash_history(run_dir: Path) -> None:
    finish_history(run_dir)  # an attempt killed before it could (kill -9) left one behind
    if (run_dir / HISTORY).is_file():
        (run_dir / HISTORY).replace(run_dir / STASH)
    # Lightning's CSV logger warns that it deletes the history; here it comes back at the end.
    warnings.filterwarnings("ignore", message=f"Experiment logs directory {re.escape(str(run_dir / CSV_DIR))}")


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    if not path.is_file():
        return [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _step(row: dict) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0


def _hold(run_dir: Path):
    try:
        return files.lock(run_dir / LOCK, timeout=0)
    except TimeoutError:
        raise ConfigError(f"{run_dir} is in use by a running process (another launch of this run)") from None


def _newest_first(task_dir: Path) -> list[Path]:
    def started(path: Path) -> tuple[str, str]:
        try:
            return manifest.load_record(path.parent).started_at, path.parent.name
        except Exception:  # noqa: BLE001: unreadable records sort last and then fail to match
            return "", path.parent.name

    return sorted(task_dir.glob(f"*/{manifest.MANIFEST}"), key=started, reverse=True)


def _mtime(path: Path) -> float:
    if path.is_dir():  # DeepSpeed rewrites files inside; the directory's own time stays put
        return max((p.stat().st_mtime for p in path.rglob("*")), default=path.stat().st_mtime)
    return path.stat().st_mtime


def _say(message: str) -> None:
    notice(message)  # on the console's stderr, also during a quiet run (factory.training.output)
