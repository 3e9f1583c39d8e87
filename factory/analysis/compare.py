"""Compare runs: pick them (run ids, an experiment, a sweep directory), tabulate their
metrics against their hyperparameters, and plot both.

``select`` reads run directories (and a sweep's ``sweep.json``, see ``factory.sweeps.results``)
and returns a ``Comparison``; its tables and figures are what
``notebooks/compare_runs.ipynb`` (reports ``compare_runs`` and ``sweep_report``) shows.
Only hyperparameters are compared: values that change the model or the data
(``factory.analysis.hyperparameters`` holds the rule), never logger, report or path settings.
Runs are labelled by their short run id (``4ff3d6``), trials by ``trial <n>``; the
``*_table`` methods give tables as a reader wants them (numbers to 4 significant digits,
``—`` where a run has no value).

Example:
    >>> comparison = compare.select(sweep_dir="outputs/fraud_detection/multirun/2026-11-24_03-36-13")
    >>> comparison.best()
    >>> comparison.metric_vs_hyperparameters()
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
from matplotlib.figure import Figure

from factory.errors import FactoryError
from factory.analysis.hyperparameters import differing_hyperparameters, unresolved_config
from factory.analysis.notebook import LoadedRun, load_run
from factory.rundir.baselines import SECTION as BASELINES
from factory.rundir.catalog import run_row, select_run_dirs
from factory.rundir.layout import is_run_dir
from factory.analysis.comparison_plots import curves, metric_bars, metric_vs_hyperparameters
from factory.analysis.readable import MISSING, UNSET, count, format_value, readable
from factory.sweeps.results import Sweep, load_sweep, minimizes

#: The groups of metric columns (``val/auroc``, ``test/auroc``, ``baseline/<name>/auroc``).
METRIC_GROUPS = ("val", "test", BASELINES)
#: Column names of a run's row, as a table heads them.
HEADINGS = {"run_id": "run id", "started_at": "started", "finished_at": "finished", "duration_s": "duration (s)",
            "data_source": "data", "data_fingerprint": "data fingerprint"}
__all__ = ["Comparison", "select", "select_run_dirs", "run_labels", "format_value", "readable", "metric_bars",
           "curves", "metric_vs_hyperparameters", "MISSING", "UNSET"]
_TIMESTAMPED_ID = re.compile(r"^(?:(\d+)_)?\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_(\w+)$")


@dataclass
class Comparison:
    """Runs (or a sweep's trials) side by side.

    Attributes:
        table: one row per run or trial, indexed by its label (the short run id, or
            ``trial <n>``): what describes it, then its final metrics (``val/...``).
        runs: the loaded runs by label (trials without a run directory have none).
        metric: the metric compared (``val/pr_auc``).
        mode: ``min`` or ``max``: which way the metric is better.
        hyperparameters: per label, the hyperparameters whose values differ between runs
            (``factory.analysis.hyperparameters``; a sweep's searched params).
        sweep: the sweep, when comparing one.
    """

    table: pd.DataFrame
    runs: dict[str, LoadedRun]
    metric: str
    mode: str
    hyperparameters: pd.DataFrame
    sweep: Sweep | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def values(self) -> pd.Series:
        """The compared metric per label, NaN where a run or trial has none."""
        column = self.table[self.metric] if self.metric in self.table else pd.Series(float("nan"), self.table.index)
        return pd.to_numeric(column, errors="coerce").rename(self.metric)

    @property
    def metrics(self) -> pd.DataFrame:
        """Final metrics (val, test and baseline columns) per label."""
        return self.table[[c for c in self.table.columns if c.split("/")[0] in METRIC_GROUPS]]

    @property
    def overview(self) -> pd.DataFrame:
        """The table without its metric columns."""
        return self.table[[c for c in self.table.columns if "/" not in c or c in self.hyperparameters]]

    @property
    def task(self) -> str:
        """The task the runs (or trials) trained, the most common one when they differ."""
        tasks = Counter(run.manifest.task_name for run in self.runs.values() if run.manifest.task_name)
        if tasks:
            return tasks.most_common(1)[0][0]
        parts = Path(self.sweep.sweep_dir).parts if self.sweep else ()
        return parts[-3] if len(parts) >= 3 and parts[-2] == "multirun" else "runs"

    def title(self) -> str:
        """``Sweep: <task> — <n> trials, objective <metric>`` or ``Compare runs: ...``."""
        n = len(self.table)
        if self.sweep is not None:
            return f"Sweep: {self.task} — {count(n, 'trial')}, objective {self.metric} ({self.mode})"
        return f"Compare runs: {self.task} — {count(n, 'run')}, metric {self.metric} ({self.mode})"

    def headline(self) -> Markdown:
        """The report's top, as Markdown: its title, the best run or trial, and any note
        (a notebook cell ending with it renders it; a text view shows the same text)."""
        lines = [f"# {self.title()}"]
        best = self.best_label()
        if best is not None:
            setting = self.setting(best)
            lines.append(f"**Best: {best}** — {self.metric} = {format_value(self.values[best])}"
                         + (f" ({setting})" if setting else "") + ".")
        if self.sweep is not None:
            counts = self.table["status"].value_counts()
            lines.append(f"Status {self.sweep.status or 'unknown'}: "
                         + ", ".join(f"{n} {status}" for status, n in counts.items()) + ".")
            if self.sweep.command:  # whole: a table cell would cut it, overrides and all
                lines.append(f"Command: `{self.sweep.command}`")
            errors = self.table["error"].dropna() if "error" in self.table else pd.Series(dtype=object)
            lines += [f"- {label} failed: `{str(error).strip().splitlines()[0]}`" for label, error in errors.items()]
        lines += [f"*{note}*" for note in self.notes]
        return Markdown("\n\n".join(lines))

    def setting(self, label: str) -> str:
        """A run's differing hyperparameters in one line (``max_epochs=3, dropout=0.1``)."""
        if label not in self.hyperparameters.index:
            return ""
        names = _short_names(self.hyperparameters.columns)
        return ", ".join(f"{names[key]}={format_value(value, UNSET)}"
                         for key, value in self.hyperparameters.loc[label].items())

    def describe(self) -> str:
        """What is compared, on which metric, and why a section may be empty."""
        what = (f"sweep {self.sweep.sweep_dir} ({self.sweep.kind}, {self.sweep.status or 'status unknown'}): "
                f"{count(len(self.table), 'trial')}" if self.sweep else count(len(self.table), "run"))
        return "\n".join([f"{what}; metric {self.metric} ({self.mode})", *self.notes])

    def best_label(self) -> str | None:
        """The label of the best run or completed trial (pruned or failed ones do not count)."""
        values = self.values.dropna()
        if self.sweep is not None:
            values = values[self.table.loc[values.index, "status"] == "completed"]
        if values.empty:
            return None
        return values.idxmin() if self.mode == "min" else values.idxmax()

    def best(self) -> pd.DataFrame | None:
        """The best run or trial (``best_label``) as a one-column table of readable values;
        None without values."""
        label = self.best_label()
        if label is None:
            return None
        # and the same metric on the other splits and baselines (test/..., baseline/<name>/...)
        name = self.metric.rsplit("/", 1)[-1]
        keep = [c for c in self.table.columns
                if c != "run_dir" and ("/" not in c or c in self.hyperparameters or c.rsplit("/", 1)[-1] == name)]
        return readable(self.table.loc[label, keep].dropna().to_frame(f"best: {label}")).rename(index=HEADINGS)

    def sweep_summary(self) -> pd.DataFrame | None:
        """How the sweep went (kind, status, objective, trials per status); None if not a sweep."""
        if self.sweep is None:
            return None
        summary = self.sweep.summary().drop(["command"], errors="ignore")  # in the headline, whole
        if Path(self.sweep.sweep_dir).resolve().is_relative_to(Path.cwd()):  # short enough for a cell
            summary.loc["sweep dir", "value"] = str(Path(self.sweep.sweep_dir).resolve().relative_to(Path.cwd()))
        best = (self.sweep.best or {}).get("value")
        if isinstance(best, float) and "best value" in summary.index:
            summary.loc["best value", "value"] = format_value(best)
        return summary

    def summary_table(self) -> pd.DataFrame:
        """One row per run or trial: status, its hyperparameters, the metric (readable)."""
        columns = ["status", *self.hyperparameters.columns]
        if self.sweep is None:
            columns += ["started_at", "duration_s"]
        frame = self.table.reindex(columns=[c for c in columns if c in self.table or c in self.hyperparameters])
        for key in self.hyperparameters.columns:  # a sweep's params are columns of both
            frame[key] = self.hyperparameters[key].reindex(frame.index)
        frame[self.metric] = self.values
        if self.sweep is not None and "error" in self.table and self.table["error"].notna().any():
            frame["error"] = self.table["error"]
        return readable(frame).rename(columns=HEADINGS)

    def metrics_table(self) -> pd.DataFrame:
        """Final metrics, readable: one column per run (up to 8 runs), else one row per run."""
        frame = readable(self.metrics)
        return frame.T if len(frame) <= 8 else frame

    def hyperparameter_table(self) -> pd.DataFrame:
        """The differing hyperparameters, readable, one row per run or trial."""
        return readable(self.hyperparameters)

    def metric_per_run(self) -> Figure | None:
        """Bars of the metric per run; None with fewer than two values."""
        values = self.values.dropna()
        return metric_bars(values, self.metric, self.best_label()) if len(values) >= 2 else None

    def learning_curves(self) -> Figure | None:
        """The validation value of the metric per epoch, one line per run (legend: its setting)."""
        curve = self.metric if self.metric.startswith("val/") else "val/" + self.metric.rsplit("/", 1)[-1]
        histories = {_with_setting(label, self.setting(label)): run.history for label, run in self.runs.items()}
        return curves(histories, curve) if len(self.table) >= 2 else None

    def metric_vs_hyperparameters(self) -> Figure | None:
        """The metric against each hyperparameter, best run marked; None with under two values."""
        values = self.values.dropna()
        if len(values) < 2 or self.hyperparameters.empty:
            return None
        return metric_vs_hyperparameters(self.hyperparameters.loc[values.index], values, best=self.best_label())


def select(run_ids: Sequence[str] = (), experiment: str | None = None, sweep_dir: str | Path | None = None,
           metric: str | None = None, root: str | Path | None = None) -> Comparison:
    """Pick runs and line them up.

    Args:
        run_ids: run ids (or their unique suffix) or run directories.
        experiment: a task name: every run of it under ``<root>/outputs``.
        sweep_dir: a sweep directory: its trials, from ``sweep.json`` (or the run
            directories below it). Not combined with ``run_ids`` or ``experiment``.
        metric: the metric to compare; default: the sweep's objective, else the runs'
            monitored metric (``run.json`` ``monitor.metric``).
        root: the directory holding ``outputs/``; default ``$FACTORY_ROOT``, else the cwd.
            With none of ``run_ids``, ``experiment``, ``sweep_dir``: the runs of the newest
            run's experiment.

    Raises:
        FactoryError: an unknown run id, an experiment without runs, a sweep directory
            that is not one, or no runs at all.
    """
    if sweep_dir:
        if run_ids or experiment:
            raise FactoryError("sweep_dir compares the trials of one sweep: leave run_ids and experiment unset")
        return _from_sweep(load_sweep(sweep_dir), metric)
    return _from_runs(select_run_dirs(run_ids, experiment, root), metric)


def _from_runs(run_dirs: Sequence[Path], metric: str | None) -> Comparison:
    table = pd.DataFrame([row for row in map(run_row, run_dirs) if row is not None])
    table = table.sort_values(["started_at", "run_id"], ascending=False, ignore_index=True)
    labels = run_labels(table["run_id"].tolist())
    if len(set(labels)) < len(labels):  # the same id in two places (copied runs): their directories
        labels = ["/".join(Path(d).parts[-2:]) for d in table["run_dir"]]
    table.index = pd.Index(labels, name="run")
    table = table.dropna(axis=1, how="all")
    runs = {label: load_run(d) for label, d in zip(labels, table["run_dir"])}
    metric, mode = _metric_and_mode(metric, runs)
    hyperparameters = differing_hyperparameters({label: run.config for label, run in runs.items()},
                                                {label: unresolved_config(run.run_dir) for label, run in runs.items()})
    return _finish(Comparison(table, runs, metric, mode, hyperparameters))


def _from_sweep(sweep: Sweep, metric: str | None) -> Comparison:
    trials = sweep.trials.copy()
    trials.index = pd.Index([f"trial {n}" for n in trials.index], name="trial")
    runs: dict[str, LoadedRun] = {}
    metrics = {}
    for label, run_dir in trials["run_dir"].items():
        if isinstance(run_dir, str) and is_run_dir(run_dir):
            runs[label] = load_run(run_dir)
            row = run_row(run_dir) or {}
            metrics[label] = {k: v for k, v in row.items() if "/" in k}
    table = trials.join(pd.DataFrame.from_dict(metrics, orient="index"))
    default_metric = metric or sweep.metric
    metric, mode = _metric_and_mode(default_metric, runs, sweep.mode if metric in (None, sweep.metric) else None)
    if metric == sweep.metric:  # the value the sweep optimized; the run's metrics.json where it has none
        table[metric] = table["value"].fillna(table[metric]) if metric in table else table["value"]
    params = sweep.params
    if sweep.kind == "runs":  # no sweep.json: the params are the differing config keys, by the same rule
        kept = differing_hyperparameters({label: run.config for label, run in runs.items()},
                                         {label: unresolved_config(run.run_dir) for label, run in runs.items()})
        params = [p for p in params if p in kept.columns] if runs else params
    hyperparameters = trials[params].copy()
    return _finish(Comparison(table, runs, metric, mode, hyperparameters, sweep))


def _metric_and_mode(metric: str | None, runs: Mapping[str, LoadedRun],
                     mode: str | None = None) -> tuple[str, str]:
    monitors = [run.manifest.monitor for run in runs.values() if run.manifest.monitor]
    if metric is None:
        named = Counter(m.get("metric") for m in monitors if m.get("metric"))
        metric = named.most_common(1)[0][0] if named else "test/accuracy"
    if mode is None:
        modes = Counter(m.get("mode") for m in monitors if m.get("metric") == metric and m.get("mode"))
        mode = modes.most_common(1)[0][0] if modes else ("min" if minimizes(metric) else "max")
    return metric, mode


def _finish(comparison: Comparison) -> Comparison:
    n = len(comparison.table)
    if n < 2 and comparison.sweep is not None:
        comparison.notes.append(f"{count(n, 'trial')} in the sweep so far: nothing to compare")
    elif n < 2:
        comparison.notes.append(f"{count(n, 'run')} selected: nothing to compare "
                                "(set run_ids, experiment or sweep_dir)")
    elif comparison.values.dropna().empty:
        logged = ", ".join(comparison.metrics.columns) or "no metrics"
        comparison.notes.append(f"no run logged {comparison.metric}; the runs have {logged}")
    elif comparison.hyperparameters.empty:
        comparison.notes.append("the runs share every hyperparameter")
    return comparison


class Markdown(str):
    """Text that Jupyter renders as Markdown and a text-only view prints as it is."""

    def _repr_markdown_(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return str(self)


# --- labels ---------------------------------------------------------

def run_labels(run_ids: Sequence[str]) -> list[str]:
    """Short labels for run ids: the random part (``4ff3d6`` for ``2026-12-07_01-36-52_4ff3d6``,
    ``4ff3d6 #0`` for sweep trial 0's ``0_2026-..._4ff3d6``); the whole id where two would
    share a label; never a bare number."""
    def short(run_id: str) -> str:
        match = _TIMESTAMPED_ID.match(str(run_id))
        if match:
            return match[2] + (f" #{match[1]}" if match[1] is not None else "")
        return f"run {run_id}" if str(run_id).isdigit() else str(run_id)

    labels = [short(r) for r in run_ids]
    return labels if len(set(labels)) == len(labels) else [short(r) if str(r).isdigit() else str(r) for r in run_ids]


def _short_names(keys: Sequence[str]) -> dict[str, str]:
    """Each dotted key by its last part (``max_epochs``) unless two keys share it."""
    last = Counter(str(k).rsplit(".", 1)[-1] for k in keys)
    return {k: str(k).rsplit(".", 1)[-1] if last[str(k).rsplit(".", 1)[-1]] == 1 else str(k) for k in keys}


def _with_setting(label: str, setting: str) -> str:
    return f"{label}: {setting}" if setting else label
