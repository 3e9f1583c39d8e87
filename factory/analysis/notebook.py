"""The small API notebooks use: compose, train, list and load runs, plot.

Everything here reads the run directory (``run.json``, ``metrics.json``,
``config.yaml``, ``csv/metrics.csv``, checkpoints), never in-memory state, so a
notebook analyses a run trained by the CLI, by a report, or in the same kernel alike.

Example:
    >>> import factory
    >>> cfg = factory.compose("train", ["experiment=fraud_detection", "logger=csv"])
    >>> result = factory.train(cfg)
    >>> factory.runs().head()
    >>> run = factory.load_run(result.run_dir)
    >>> factory.analysis.plots.learning_curves(run.history)
    >>> preds = run.predictions("test")
    >>> factory.analysis.plots.metrics_by_segment(preds, "channel")
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from factory.rundir import manifest as run_files
from factory import train  # noqa: F401  (re-exported: in this kernel, or as a process)
from factory.config import compose  # noqa: F401  (re-exported)
from factory.errors import FactoryError

#: Columns of ``list_runs`` before the metric columns.
RUN_COLUMNS = ["run_id", "experiment", "status", "started_at", "duration_s", "data_source",
               "data_fingerprint", "rows", "strategy", "run_dir"]
HISTORY = Path("csv") / "metrics.csv"


def outputs_dir(root: str | Path | None = None) -> Path:
    """``<root>/outputs``; ``root`` defaults as in ``conf/paths``: ``$FACTORY_ROOT``, else the cwd."""
    return Path(root if root is not None else os.environ.get("FACTORY_ROOT", ".")) / "outputs"


def list_runs(root: str | Path | None = None) -> pd.DataFrame:
    """Every run under ``<root>/outputs`` as one row, newest first.

    Columns: run_id, experiment (task_name), status, started_at (datetime, UTC),
    duration_s, data_source, data_fingerprint (first 12 hex), rows (total), strategy,
    run_dir, then one column per final metric in ``metrics.json`` (``val/pr_auc``,
    ``test/...``, ``baseline/pr_auc``). A run without a metric has NaN there.

    Args:
        root: the directory holding ``outputs/`` (``paths.root_dir``).

    Returns:
        The runs; an empty frame with the columns above when there are none.
    """
    found = (run_row(manifest.parent) for manifest in outputs_dir(root).rglob(run_files.MANIFEST))
    rows = [row for row in found if row is not None]
    if not rows:
        return pd.DataFrame(columns=RUN_COLUMNS)
    frame = pd.DataFrame(rows)
    metric_columns = sorted(c for c in frame.columns if c not in RUN_COLUMNS)
    frame = frame[RUN_COLUMNS + metric_columns]
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)
    return frame.sort_values(["started_at", "run_id"], ascending=False, ignore_index=True)


def run_row(run_dir: str | Path) -> dict[str, Any] | None:
    """One run as a row of ``list_runs`` (its columns, then its final metrics).

    Returns:
        The row, or None when ``run.json`` is missing, half-written or not a run's.
    """
    run_dir = Path(run_dir)
    try:
        record = run_files.load_record(run_dir)
    except (OSError, ValueError, TypeError):
        return None
    data = record.data or {}
    row: dict[str, Any] = {
        "run_id": record.run_id,
        "experiment": record.task_name,
        "status": record.status,
        "started_at": pd.Timestamp(datetime.fromisoformat(record.started_at)),
        "duration_s": record.duration_s,
        "data_source": data.get("source"),
        "data_fingerprint": (data.get("fingerprint") or "")[:12] or None,
        "rows": sum((data.get("rows") or {}).values()) or None,
        "strategy": (record.strategy or {}).get("name"),
        "run_dir": str(run_dir),
    }
    row.update(flat_metrics(_read_metrics(run_dir)))
    return row


def flat_metrics(metrics: dict) -> dict[str, float]:
    """``metrics.json`` as one level: ``val/...`` and ``test/...`` as logged, ``baseline/<name>``."""
    flat: dict[str, float] = {}
    for group, values in metrics.items():
        if not isinstance(values, dict):
            continue  # e.g. the checkpoint path an evaluate run records
        for name, value in values.items():
            flat[name if "/" in name else f"{group}/{name}"] = value
    return flat


@dataclass
class LoadedRun:
    """A finished (or failed) run read back from its directory.

    Attributes:
        run_dir: the run directory.
        manifest: ``run.json`` as a ``RunRecord``.
        config: the resolved config the run used (``config.yaml``).
        metrics: final metrics (``metrics.json``): ``{"val": {...}, "test": {...}, ...}``.
    """

    run_dir: Path
    manifest: run_files.RunRecord
    config: DictConfig
    metrics: dict
    _model: Any = field(default=None, repr=False)

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def steps(self) -> pd.DataFrame:
        """``csv/metrics.csv`` as logged: one row per logging call, NaN where a row logs nothing."""
        path = self.run_dir / HISTORY
        return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["epoch", "step"])

    @property
    def lineage(self) -> pd.DataFrame:
        """What produced the run, one ``value`` per row: id, status, times, command, git commit,
        seed, data source and fingerprint, rows, strategy, best checkpoint, library versions."""
        record = self.manifest
        git, data = record.git or {}, record.data or {}
        facts = {
            "run id": record.run_id, "status": record.status, "started": record.started_at,
            "duration (s)": record.duration_s, "command": " ".join(record.command[1:]),
            "git commit": git.get("commit"), "uncommitted changes": git.get("dirty"),
            "seed": record.seed, "data source": data.get("source"), "data fingerprint": data.get("fingerprint"),
            "rows": data.get("rows"), "strategy": record.strategy, "best checkpoint": record.best_checkpoint,
            **{f"version: {k}": v for k, v in (record.versions or {}).items()},
        }
        return pd.DataFrame({"value": {k: str(v) for k, v in facts.items()}})

    @property
    def metrics_table(self) -> pd.DataFrame:
        """Final metrics, one column per group (val, test, baseline); see ``metrics_table``."""
        return metrics_table(self.metrics)

    @property
    def history(self) -> pd.DataFrame:
        """One row per training epoch: ``epoch``, ``step`` and every train/val/lr column merged.

        The validation and test calls after ``fit`` (on the best checkpoint) are left out:
        their values are in ``metrics``.
        """
        return tidy_history(self.steps)

    def model(self):
        """The trained model (best checkpoint, else last; ZeRO shards consolidated), in eval mode."""
        if self._model is None:
            from factory.training.recipe import RunResult

            self._model = RunResult.from_run_dir(self.run_dir).load_model()
        return self._model

    def predictions(self, split: str = "test") -> pd.DataFrame:
        """The model's scores on ``split`` (``train``, ``val`` or ``test``) of the run's data.

        Returns:
            The split's raw rows plus ``target``, ``label``, ``prediction``, ``score``
            (and ``prob_<label>`` per class for multiclass); see
            ``factory.analysis.predictions.predict_split``.
        """
        from factory.analysis.predictions import run_predictions

        return run_predictions(self.run_dir, self.config, self.manifest.best_checkpoint,
                               (self.manifest.data or {}).get("fingerprint"), split, model=self.model())


def metrics_table(metrics: dict) -> pd.DataFrame:
    """``metrics.json`` (or ``RunResult.metrics``) as a table: a row per metric name, a column per group.

    Example:
        ``{"val": {"val/loss": 0.2}, "test": {"test/loss": 0.3}}`` -> row ``loss``, columns ``val``, ``test``.
    """
    return pd.DataFrame({group: {name.split("/", 1)[-1]: value for name, value in values.items()}
                         for group, values in metrics.items() if isinstance(values, dict)})


def segment_column(predictions: pd.DataFrame, max_levels: int = 30) -> str | None:
    """The text column with the fewest levels (2 to ``max_levels``) to split metrics by, or None.

    ``label`` (the target's display value) is not a segment.
    """
    candidates = [c for c in predictions.columns if predictions[c].dtype == object and c != "label"
                  and 2 <= predictions[c].nunique() <= max_levels]
    return min(candidates, key=lambda c: predictions[c].nunique()) if candidates else None


def tidy_history(steps: pd.DataFrame) -> pd.DataFrame:
    """Merge the CSV logger's rows into one row per training epoch (see ``LoadedRun.history``)."""
    if steps.empty or "epoch" not in steps:
        return pd.DataFrame(columns=["epoch", "step"])
    steps = steps.copy()
    # Per-epoch LR rows carry a step but no epoch; they come just before their epoch's rows.
    steps["epoch"] = steps["epoch"].bfill()
    steps = steps.dropna(subset=["epoch"])
    columns = [c for c in steps.columns if not c.startswith("test/")]
    tidy = steps[columns].groupby("epoch", sort=True).last().reset_index()
    train_columns = [c for c in tidy.columns if c.startswith("train/")]
    if train_columns:  # drop the post-fit validation of the best checkpoint
        tidy = tidy[tidy[train_columns].notna().any(axis=1)]
    tidy["epoch"] = tidy["epoch"].astype(int)
    return tidy.dropna(axis=1, how="all").reset_index(drop=True)


def load_run(path_or_id: str | Path, root: str | Path | None = None) -> LoadedRun:
    """Read a run back: its manifest, config, final metrics, history; model and predictions on demand.

    Args:
        path_or_id: a run directory, or a run id found under ``<root>/outputs``
            (``2026-11-24_03-36-13_203edf``, a sweep trial's ``0_2026-11-24_03-36-13_203edf``,
            or a unique suffix such as ``203edf``, which names every trial of that sweep).
        root: the directory holding ``outputs/``; defaults to ``$FACTORY_ROOT``, else the cwd.

    Raises:
        FactoryError: no such run, or more than one run matches the id.
    """
    run_dir = find_run(path_or_id, root)
    config_file = run_dir / run_files.CONFIG
    config = OmegaConf.load(config_file) if config_file.is_file() else OmegaConf.create()
    return LoadedRun(run_dir, run_files.load_record(run_dir), config, _read_metrics(run_dir))


def find_run(path_or_id: str | Path, root: str | Path | None = None) -> Path:
    """The directory of a run given as a path or an id (see ``load_run``)."""
    path = Path(path_or_id)
    if (path / run_files.MANIFEST).is_file():
        return path.resolve()
    key = str(path_or_id)
    outputs = outputs_dir(root)
    found = [m.parent for m in outputs.rglob(run_files.MANIFEST)
             if m.parent.name == key or m.parent.name.endswith(f"_{key}")]
    if len(found) == 1:
        return found[0].resolve()
    if not found:
        raise FactoryError(f"no run {key!r}: not a run directory, nor a run id under {outputs}")
    raise FactoryError(f"run id {key!r} matches {len(found)} runs under {outputs}: "
                       + ", ".join(str(p) for p in sorted(found)))


def _read_metrics(run_dir: Path) -> dict:
    path = run_dir / run_files.METRICS
    return json.loads(path.read_text()) if path.is_file() else {}
