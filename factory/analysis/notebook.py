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
    >>> factory.plots.learning_curves(run.history)
    >>> preds = run.predictions("test")
    >>> factory.plots.metrics_by_segment(preds, "channel")
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from factory.training.launch import train  # noqa: F401  (re-exported: in this kernel, or as a process)
from factory.config import compose  # noqa: F401  (re-exported)
from factory.rundir.catalog import (RUN_COLUMNS, RunFiles, find_run, flat_metrics,  # noqa: F401  (re-exported)
                                    list_runs, outputs_dir, read_history, run_row)

from factory.analysis.plot_inputs import step_level
from factory.rundir.baselines import baseline_metrics, label, metric_sections
from factory.console import printed_to_log
from factory.formatting import MISSING, format_value

#: A metric only one task logs (``factory.models.metrics.task_metrics``): how a run's task is read back.
_TASK_METRICS = {"binary": {"pr_auc", "auroc"}, "multiclass": {"f1_macro"}, "regression": {"r2", "mse"},
                 "language_modeling": {"perplexity"}}


@dataclass
class LoadedRun(RunFiles):
    """A finished (or failed) run read back from its directory (``factory.rundir.catalog.RunFiles``),
    with what notebooks look at: history, lineage, metrics table, model and predictions.

    Attributes:
        run_dir: the run directory.
        manifest: ``run.json`` as a ``RunRecord``.
        config: the resolved config the run used (``config.yaml``).
        metrics: final metrics (``metrics.json``): ``{"val": {...}, "test": {...}, ...}``.
    """

    _model: Any = field(default=None, repr=False)

    def __repr__(self) -> str:
        """A few lines: id, experiment, task, status; the monitored metric's best value beside
        the same metric on test (and each baseline); an error's first line; the directory."""
        record, monitor = self.manifest, self.manifest.monitor or {}
        lines = [f"LoadedRun {record.run_id}: {record.task_name}, {self.task or 'task unknown'}, {record.status}"]
        metric = monitor.get("metric")
        if metric:
            name = metric.split("/", 1)[-1]
            facts = [f"{metric} {format_value(monitor.get('best'))} (best, {monitor.get('mode', 'min')})"]
            test = (self.metrics.get("test") or {}).get(f"test/{name}")
            facts += [f"test/{name} {format_value(test)}"] if test is not None else []
            facts += [f"{label(baseline)} {format_value(values[name])}"
                      for baseline, values in baseline_metrics(self.metrics).items() if name in values]
            lines.append("  " + " · ".join(facts))
        if record.error:
            lines.append(f"  error: {str(record.error).strip().splitlines()[0][:200]}")
        lines.append(f"  {self.run_dir}")
        return "\n".join(lines)

    @property
    def task(self) -> str | None:
        """``binary``, ``multiclass``, ``regression`` or ``language_modeling``, read from the metric names
        the run logged (``factory.models.metrics.task_metrics``); None for a run that logged none."""
        names = {name.split("/", 1)[-1] for values in metric_sections(self.metrics).values() for name in values}
        return next((task for task, marker in _TASK_METRICS.items() if marker & names), None)

    @property
    def steps(self) -> pd.DataFrame:
        """``csv/metrics.csv`` as logged: one row per logging call, NaN where a row logs nothing."""
        return read_history(self.run_dir)

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
        """Final metrics, one column per group (val, test, each baseline); see ``metrics_table``."""
        return metrics_table(self.metrics)

    @property
    def history(self) -> pd.DataFrame:
        """One row per training epoch: ``epoch``, ``step`` and every train/val/lr column merged.

        The validation and test calls after ``fit`` (on the best checkpoint) are left out:
        their values are in ``metrics``.
        """
        return tidy_history(self.steps)

    def model(self):
        """The trained model (best checkpoint, else last; ZeRO shards consolidated), in eval mode.

        What libraries print while reading it (DeepSpeed's consolidation lines and progress
        bars, their warnings) is kept out of the notebook: it goes to this module's logger.
        """
        if self._model is None:
            from factory.training.recipe import RunResult

            with printed_to_log(__name__):  # ZeRO consolidation prints, tqdm bars, warnings: to the debug log
                self._model = RunResult.from_run_dir(self.run_dir).load_model()
        return self._model

    def predictions(self, split: str = "test") -> pd.DataFrame:
        """The model's scores on ``split`` (``train``, ``val`` or ``test``) of the run's data.

        Returns:
            The split's raw rows plus ``target``, ``label``, ``prediction``, ``score``
            (and ``prob_<label>`` per class for multiclass); see
            ``factory.models.predict.predict_split``.
        """
        from factory.analysis.predictions import run_predictions

        return run_predictions(self.run_dir, self.config, self.manifest.best_checkpoint,
                               (self.manifest.data or {}).get("fingerprint"), split, model=self.model())


def metrics_table(metrics: dict) -> pd.DataFrame:
    """Final metrics as a table: a row per metric name, a column per group: val, test, then each
    baseline by its name (``logistic_regression``, ``hist_gradient_boosting``; an old run's one
    flat baseline is ``logistic_regression``, ``factory.rundir.baselines``).

    Args:
        metrics: ``metrics.json`` as read back (``LoadedRun.metrics``), or ``RunResult.metrics``
            (what ``factory.train`` returns).

    Returns:
        A DataFrame of floats (a ``MetricsTable``). A group without a metric holds NaN there (the
        baselines have no loss), so the values still compute; its display in a
        notebook shows 4 significant digits and ``—`` for such a cell, never ``NaN``.

    Example:
        >>> table = factory.metrics_table({"val": {"val/loss": 0.2, "val/auroc": 0.91},
        ...                                "test": {"test/loss": 0.3, "test/auroc": 0.9},
        ...                                "baseline": {"logistic_regression": {"auroc": 0.88},
        ...                                             "hist_gradient_boosting": {"auroc": 0.89}}})
        >>> table
                val  test  logistic_regression  hist_gradient_boosting
        loss    0.2   0.3                    —                       —
        auroc  0.91   0.9                 0.88                    0.89
        >>> table.loc["auroc", "test"] - table.loc["auroc", "logistic_regression"]   # a float
    """
    return MetricsTable({group: {name.split("/", 1)[-1]: value for name, value in values.items()}
                         for group, values in metric_sections(metrics).items()})


class MetricsTable(pd.DataFrame):
    """A DataFrame that displays missing values as ``—`` and floats to 4 significant digits.

    Only the display differs: any operation returns a plain DataFrame of the same values.
    """

    @property
    def _constructor(self):
        return pd.DataFrame

    def _display_options(self) -> dict:
        return {"na_rep": MISSING, "float_format": format_value}

    def __repr__(self) -> str:
        return self.to_string(**self._display_options())

    def _repr_html_(self) -> str:
        return self.to_html(notebook=True, **self._display_options())


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
    # Step-level values (`train/loss` beside its `train/loss_epoch`, any `*_step`) stay in
    # `steps`: the last step of an epoch next to the epoch's mean would read as two curves.
    per_step = step_level(list(steps.columns))
    columns = [c for c in steps.columns if not c.startswith("test/") and c not in per_step]
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
    return LoadedRun.read(find_run(path_or_id, root))
