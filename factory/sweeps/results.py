"""A finished (or running) sweep read back for analysis: its trials as a table, and the best.

A sweep directory (Hydra's multirun directory, ``outputs/<task>/multirun/<time>/``) holds
``sweep.json``, written by the sweep as trials start and finish::

    {"version": 1, "sweep_dir": ..., "kind": "optuna" | "grid", "command": ...,
     "objective": {"metric": "val/pr_auc", "mode": "max"}, "status": "running" | "completed" | "failed",
     "updated_at": ..., "trials": [{"number": 0, "overrides": [...], "params": {...}, "status": ...,
     "value": 0.41, "run_dir": ..., "run_id": ..., "error": null, "started_at": ..., "finished_at": ...}],
     "best": {"number": 0, "value": 0.41, "overrides": [...], "params": {...}, "run_dir": ...}}

A directory without one (a sweep from before it existed, or any folder of runs) is read
from the ``run.json`` files below it: one trial per run, its params the config values
that differ between the runs.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from factory.errors import FactoryError
from factory.sweeps import journal
from factory.sweeps.journal import JOURNAL
#: Columns of ``Sweep.trials`` before and after the params.
HEAD = ["status", "value"]
TAIL = ["run_id", "run_dir", "error", "started_at", "finished_at"]


@dataclass
class Sweep:
    """A sweep's trials.

    Attributes:
        sweep_dir: the sweep directory.
        kind: ``optuna``, ``grid`` or, read from run directories alone, ``runs``.
        status: ``running``, ``completed``, ``failed`` (None when not recorded).
        metric: the objective (``val/pr_auc``); None when the runs name none.
        mode: ``min`` or ``max``.
        trials: one row per trial, indexed by trial number: status, value (the objective),
            one column per param, run_id, run_dir, error, started_at, finished_at.
        params: the param columns, in order of first appearance.
        best: the best trial as recorded (number, value, params, overrides, run_dir).
        command: the command that ran the sweep.
        updated_at: when the journal last changed.
    """

    sweep_dir: Path
    kind: str
    status: str | None
    metric: str | None
    mode: str | None
    trials: pd.DataFrame
    params: list[str]
    best: dict | None = None
    command: str | None = None
    updated_at: str | None = None

    def summary(self) -> pd.DataFrame:
        """One column: kind, status, objective, trials per status, best trial, command."""
        counts = self.trials["status"].value_counts()
        best = self.best or {}
        facts = {
            "sweep dir": str(self.sweep_dir), "kind": self.kind, "status": self.status,
            "objective": f"{self.metric} ({self.mode})" if self.metric else None,
            "trials": len(self.trials), **{f"trials {s}": int(n) for s, n in counts.items()},
            "best trial": best.get("number"), "best value": best.get("value"),
            "updated at": self.updated_at, "command": self.command,
        }
        return pd.DataFrame({"value": {k: str(v) for k, v in facts.items() if v is not None}})


def load_sweep(sweep_dir: str | Path) -> Sweep:
    """Read ``sweep_dir``: its ``sweep.json``, else the run directories below it.

    Raises:
        FactoryError: the directory does not exist, ``sweep.json`` is not a sweep journal,
            or there is neither a journal nor a run below it.
    """
    path = Path(sweep_dir)
    if not path.is_dir():
        raise FactoryError(f"sweep_dir: {sweep_dir}: no such directory")
    if (path / JOURNAL).is_file():
        return sweep_from_journal(read_journal(path), path)
    return sweep_from_runs(path)


def read_journal(sweep_dir: str | Path) -> dict[str, Any]:
    """``sweep.json`` of ``sweep_dir``, checked for the shape this module reads (``journal.read``)."""
    return journal.read(sweep_dir)


def sweep_from_journal(journal: Mapping[str, Any], sweep_dir: str | Path) -> Sweep:
    """A ``Sweep`` from a parsed ``sweep.json`` (see the module docstring for its shape)."""
    rows, params = {}, {}
    for trial in journal["trials"]:
        values = {k: _cell(v) for k, v in (trial.get("params") or {}).items()}
        params.update(dict.fromkeys(values))
        rows[trial["number"]] = {"status": trial.get("status"), "value": trial.get("value"), **values,
                                 **{k: trial.get(k) for k in TAIL}}
    objective = journal.get("objective") or {}
    trials = _trial_frame(rows, list(params))
    metric, mode = objective.get("metric"), objective.get("mode")
    best = journal.get("best") or best_trial(trials, mode or "max")
    return Sweep(Path(journal.get("sweep_dir") or sweep_dir), journal.get("kind") or "unknown",
                 journal.get("status"), metric, mode, trials, list(params), best,
                 journal.get("command"), journal.get("updated_at"))


def sweep_from_runs(sweep_dir: str | Path) -> Sweep:
    """A ``Sweep`` from the run directories below ``sweep_dir`` (no ``sweep.json``).

    Trials are numbered by their directory name where it starts with a number (Hydra's job
    number: ``<n>_<sweep id>``, or ``<n>`` before sweep ids), else in path order; the
    objective is the runs' monitored metric.
    """
    from factory.rundir.catalog import flat_metrics, read_run, run_dirs_below
    from factory.rundir.layout import MANIFEST

    found = run_dirs_below(sweep_dir)
    if not found:
        raise FactoryError(f"sweep_dir: {sweep_dir}: no {JOURNAL} and no {MANIFEST} below it")
    numbers = [int(d.name.split("_", 1)[0]) if d.name.split("_", 1)[0].isdigit() else i for i, d in enumerate(found)]
    if len(set(numbers)) < len(numbers):
        numbers = list(range(len(found)))
    runs = dict(zip(numbers, (read_run(d) for d in found)))
    monitors = [r.manifest.monitor for r in runs.values() if r.manifest.monitor]
    metric = _most_common(m.get("metric") for m in monitors)
    mode = _most_common(m.get("mode") for m in monitors if m.get("metric") == metric)
    hyperparameters = differing_config({n: r.config for n, r in runs.items()}, {n: r.run_dir for n, r in runs.items()})
    rows = {}
    for n, run in runs.items():
        record = run.manifest
        rows[n] = {"status": record.status, "value": flat_metrics(run.metrics).get(metric), **hyperparameters.loc[n].to_dict(),
                   "run_id": record.run_id, "run_dir": str(run.run_dir), "error": record.error,
                   "started_at": record.started_at, "finished_at": record.ended_at}
    statuses = {r.manifest.status for r in runs.values()}
    trials = _trial_frame(rows, list(hyperparameters.columns))
    return Sweep(Path(sweep_dir), "runs", "running" if "running" in statuses else "completed", metric, mode,
                 trials, list(hyperparameters.columns), best_trial(trials, mode or "max"))


def best_trial(trials: pd.DataFrame, mode: str) -> dict | None:
    """The completed trial with the best value (``mode`` ``min`` or ``max``), or None."""
    done = trials[(trials["status"] == "completed") & trials["value"].notna()]
    if done.empty:
        return None
    values = done["value"].astype(float)
    number = values.idxmin() if mode == "min" else values.idxmax()
    row = done.loc[number]
    params = {k: row[k] for k in done.columns if k not in HEAD and k not in TAIL}
    return {"number": int(number), "value": float(row["value"]), "params": params, "run_dir": row["run_dir"]}


def differing_config(configs: Mapping[Any, DictConfig | Mapping], run_dirs: Mapping[Any, Path] | None = None
                     ) -> pd.DataFrame:
    """Config values (flattened to dotted keys) that differ between runs, one row per run.

    Keys whose value names a run's own directory (``paths.run_dir``) are left out: they
    differ between any two runs.
    """
    labels = list(configs)
    frame = pd.DataFrame([config_values(configs[label]) for label in labels], index=labels)
    if frame.empty:
        return frame
    dirs = [str(run_dirs[label]) for label in labels] if run_dirs else [None] * len(labels)
    keep = []
    for key in frame.columns:
        column = frame[key]
        if any(d and isinstance(v, str) and d in v for v, d in zip(column, dirs)):
            continue
        if column.astype(str).nunique(dropna=False) > 1:
            keep.append(key)
    return frame[keep]


def config_values(config: DictConfig | Mapping) -> dict:
    """A config as ``{dotted.key: value}`` (lists and dicts as strings)."""
    plain = OmegaConf.to_container(config, resolve=False) if isinstance(config, DictConfig) else dict(config)
    flat = pd.json_normalize(plain, sep=".").iloc[0].to_dict() if plain else {}
    return {k: _cell(v) for k, v in flat.items()}


def minimizes(metric: str) -> bool:
    """Whether lower is better for a metric of this name (losses and errors)."""
    name = metric.rsplit("/", 1)[-1].lower()
    return any(word in name for word in ("loss", "error", "mse", "mae", "rmse", "brier"))


def _cell(value: Any) -> Any:
    """Lists and dicts as text: a table cell, a category on a plot axis."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _trial_frame(rows: dict[int, dict], params: list[str]) -> pd.DataFrame:
    columns = HEAD + [p for p in params if p not in HEAD + TAIL] + TAIL
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=columns) if rows else pd.DataFrame(columns=columns)
    frame.index.name = "number"
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame.sort_index()


def _most_common(values) -> Any:
    counts = Counter(v for v in values if v)
    return counts.most_common(1)[0][0] if counts else None
