"""Listing, finding and reading runs back from their directories.

Every reader of runs (the notebook API, the registry, sweeps, reports, comparisons) goes
through here, so a run is found and read one way. Reads only the run directory (``run.json``,
``config.yaml``, ``metrics.json``, ``csv/metrics.csv``), never in-memory state. pandas is
imported by the functions that return frames, so finding a run stays light.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from factory.errors import FactoryError
from factory.rundir.baselines import SECTION as BASELINES
from factory.rundir.baselines import baseline_metrics
from factory.rundir.cv import SECTION as CV_SECTION
from factory.rundir.manifest import RunRecord, load_record
from factory.rundir.layout import CONFIG, HISTORY, MANIFEST, METRICS, is_run_dir

#: Columns of ``list_runs`` before the metric columns.
RUN_COLUMNS = ["run_id", "experiment", "status", "started_at", "duration_s", "kwh", "kg_co2e", "energy_method",
               "data_source", "data_fingerprint", "rows", "strategy", "run_dir", "profile"]


def outputs_dir(root: str | Path | None = None) -> Path:
    """``<root>/outputs``; ``root`` defaults as in ``conf/paths``: ``$FACTORY_ROOT``, else the cwd."""
    return Path(root if root is not None else os.environ.get("FACTORY_ROOT", ".")) / "outputs"


def run_dirs_below(folder: str | Path) -> list[Path]:
    """Every run directory under ``folder`` (at any depth: sweep trials included), in path order."""
    folder = Path(folder)
    return sorted(m.parent for m in folder.rglob(MANIFEST)) if folder.is_dir() else []


def runs_named(key: str, outputs: str | Path) -> list[Path]:
    """The run directories under ``outputs`` whose name is ``key`` or ends with ``_<key>``.

    ``key`` is a run id, a sweep trial's ``<n>_<id>``, or a unique suffix of one.
    """
    return [d for d in run_dirs_below(outputs) if d.name == key or d.name.endswith(f"_{key}")]


def find_run(path_or_id: str | Path, root: str | Path | None = None) -> Path:
    """The directory of a run given as a path or an id found under ``<root>/outputs``.

    Raises:
        FactoryError: no such run, or more than one run matches the id.
    """
    path = Path(path_or_id)
    if is_run_dir(path):
        return path.resolve()
    key = str(path_or_id)
    outputs = outputs_dir(root)
    found = runs_named(key, outputs)
    if len(found) == 1:
        return found[0].resolve()
    if not found:
        raise FactoryError(f"no run {key!r}: not a run directory, nor a run id under {outputs}")
    raise FactoryError(f"run id {key!r} matches {len(found)} runs under {outputs}: "
                       + ", ".join(str(p) for p in sorted(found)))


def read_metrics(run_dir: str | Path) -> dict:
    """``metrics.json``; empty when the run wrote none (it failed, or is still running)."""
    path = Path(run_dir) / METRICS
    return json.loads(path.read_text()) if path.is_file() else {}


def read_config(run_dir: str | Path) -> DictConfig:
    """``config.yaml`` (the resolved config, credentials masked); empty when it is missing."""
    path = Path(run_dir) / CONFIG
    return OmegaConf.load(path) if path.is_file() else OmegaConf.create()


def read_history(run_dir: str | Path):
    """``csv/metrics.csv`` as logged, as a DataFrame: one row per logging call, NaN where a row logs nothing."""
    import pandas as pd

    path = Path(run_dir) / HISTORY
    return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["epoch", "step"])


def flat_metrics(metrics: dict) -> dict[str, float]:
    """``metrics.json`` as one level: ``val/...`` and ``test/...`` as logged, then
    ``baseline/<baseline>/<metric>`` (``baseline/logistic_regression/auroc``; old runs' too).
    A cross-validated run's values are its means over the folds; its ``cv`` section is left out."""
    flat: dict[str, float] = {}
    for group, values in metrics.items():
        if group in (BASELINES, CV_SECTION) or not isinstance(values, dict):
            continue  # the baselines below; the checkpoint path an evaluate run records; the folds' spread
        for name, value in values.items():
            flat[name if "/" in name else f"{group}/{name}"] = value
    for baseline, values in baseline_metrics(metrics).items():
        flat.update({f"{BASELINES}/{baseline}/{name}": value for name, value in values.items()})
    return flat


@dataclass
class RunFiles:
    """A run's files, read back: what every reader of a finished (or failed) run starts from.

    Attributes:
        run_dir: the run directory.
        manifest: ``run.json`` as a ``RunRecord``.
        config: the resolved config the run used (``config.yaml``).
        metrics: final metrics (``metrics.json``): ``{"val": {...}, "test": {...}, ...}``.
    """

    run_dir: Path
    manifest: RunRecord
    config: DictConfig
    metrics: dict

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @classmethod
    def read(cls, run_dir: str | Path, **extra: Any):
        """Read the run in ``run_dir`` (``extra``: further fields of a subclass)."""
        run_dir = Path(run_dir)
        return cls(run_dir, load_record(run_dir), read_config(run_dir), read_metrics(run_dir), **extra)


def read_run(path_or_id: str | Path, root: str | Path | None = None) -> RunFiles:
    """``RunFiles`` of a run given as a path or an id (``find_run``)."""
    return RunFiles.read(find_run(path_or_id, root))


def run_row(run_dir: str | Path) -> dict[str, Any] | None:
    """One run as a row of ``list_runs`` (its columns, then its final metrics).

    Returns:
        The row, or None when ``run.json`` is missing, half-written or not a run's.
    """
    import pandas as pd

    run_dir = Path(run_dir)
    try:
        record = load_record(run_dir)
    except (OSError, ValueError, TypeError):
        return None
    data, energy = record.data or {}, record.energy or {}
    row: dict[str, Any] = {
        "run_id": record.run_id,
        "experiment": record.task_name,
        "status": record.status,
        "started_at": pd.Timestamp(datetime.fromisoformat(record.started_at)),
        "duration_s": record.duration_s,
        "kwh": energy.get("kwh"),  # energy: factory.training.energy; None when energy.track was off
        "kg_co2e": energy.get("kg_co2e"),
        "energy_method": energy.get("method"),  # measured (a power meter read) | estimated (CodeCarbon's model)
        "data_source": data.get("source"),
        "data_fingerprint": (data.get("fingerprint") or "")[:12] or None,
        "rows": sum((data.get("rows") or {}).values()) or None,
        "strategy": (record.strategy or {}).get("name"),
        "run_dir": str(run_dir),
        # the reference profile factory.monitoring.profile wrote (None: not written, e.g. a CV run)
        "profile": str(run_dir / record.profile) if record.profile else None,
    }
    row.update(flat_metrics(read_metrics(run_dir)))
    return row


def list_runs(root: str | Path | None = None):
    """Every run under ``<root>/outputs`` as one row of a DataFrame, newest first.

    Columns: run_id, experiment (task_name), status, started_at (datetime, UTC),
    duration_s, kwh, kg_co2e, energy_method (``measured`` or ``estimated``: ``run.json``'s
    ``energy``; empty for a run not measured), data_source, data_fingerprint (first 12 hex), rows (total), strategy,
    run_dir, profile (its ``profile.json``, when the run has a reference profile), then one column per final metric in ``metrics.json`` (``val/pr_auc``,
    ``test/...``, ``baseline/logistic_regression/pr_auc``). A run without a metric has NaN there.

    Args:
        root: the directory holding ``outputs/`` (``paths.root_dir``).

    Returns:
        The runs; an empty frame with the columns above when there are none.
    """
    import pandas as pd

    found = (run_row(run_dir) for run_dir in run_dirs_below(outputs_dir(root)))
    rows = [row for row in found if row is not None]
    if not rows:
        return pd.DataFrame(columns=RUN_COLUMNS)
    frame = pd.DataFrame(rows)
    metric_columns = sorted(c for c in frame.columns if c not in RUN_COLUMNS)
    frame = frame[RUN_COLUMNS + metric_columns]
    # ISO8601: runs recorded with seconds (before) and milliseconds (now) list together
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True, format="ISO8601")
    return frame.sort_values(["started_at", "run_id"], ascending=False, ignore_index=True)


def select_run_dirs(run_ids: Sequence[str] = (), experiment: str | None = None,
                    root: str | Path | None = None) -> list[Path]:
    """Run directories named by ids, of an experiment, or (neither) of the newest run's experiment."""
    selected = [find_run(key, root) for key in run_ids]
    if experiment or not run_ids:
        table = list_runs(root)
        if table.empty:
            raise FactoryError(f"no runs under {outputs_dir(root)}")
        name = experiment or table["experiment"].iloc[0]
        found = table.loc[table["experiment"] == name, "run_dir"]
        if found.empty:
            known = ", ".join(sorted(set(table["experiment"])))
            raise FactoryError(f"experiment={name!r}: no runs under {outputs_dir(root)} (experiments: {known})")
        selected += [Path(d).resolve() for d in found]
    return list(dict.fromkeys(selected))
