"""Compare runs: pick them (run ids, an experiment, a sweep directory), tabulate their
metrics against their hyperparameters, and plot both.

``select`` reads run directories (and a sweep's ``sweep.json``, see ``factory.sweeps.results``)
and returns a ``Comparison``; its tables and figures are what
``notebooks/compare_runs.ipynb`` (reports ``compare_runs`` and ``sweep_report``) shows.

Example:
    >>> comparison = compare.select(sweep_dir="outputs/fraud_detection/multirun/2026-11-24_03-36-13")
    >>> comparison.best()
    >>> comparison.metric_vs_hyperparameters()
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
from matplotlib.figure import Figure

from factory.errors import FactoryError
from factory.analysis.notebook import LoadedRun, load_run
from factory.rundir.catalog import find_run, list_runs, outputs_dir, run_row
from factory.rundir.layout import is_run_dir
from factory.analysis.plots import small_multiples
from factory.sweeps.results import Sweep, differing_config, load_sweep, minimizes

METRIC_GROUPS = ("val", "test", "baseline")


@dataclass
class Comparison:
    """Runs (or a sweep's trials) side by side.

    Attributes:
        table: one row per run or trial, indexed by its label (the run id, or
            ``trial <n>``): what describes it, then its final metrics (``val/...``).
        runs: the loaded runs by label (trials without a run directory have none).
        metric: the metric compared (``val/pr_auc``).
        mode: ``min`` or ``max``: which way the metric is better.
        hyperparameters: per label, the values that differ between runs (a sweep's params).
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

    def describe(self) -> str:
        """What is compared, on which metric, and why a section may be empty."""
        what = (f"sweep {self.sweep.sweep_dir} ({self.sweep.kind}, {self.sweep.status or 'status unknown'}): "
                f"{len(self.table)} trials" if self.sweep else f"{len(self.table)} runs")
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
        """The best run or trial (``best_label``) as a one-column table; None without values."""
        label = self.best_label()
        if label is None:
            return None
        return self.table.loc[label].dropna().to_frame(f"best: {label}").astype(str)

    def sweep_summary(self) -> pd.DataFrame | None:
        """How the sweep went (kind, status, objective, trials per status); None if not a sweep."""
        return self.sweep.summary() if self.sweep else None

    def metric_per_run(self) -> Figure | None:
        """Bars of the metric per run; None with fewer than two values."""
        values = self.values.dropna()
        return metric_bars(values, self.metric) if len(values) >= 2 else None

    def learning_curves(self) -> Figure | None:
        """The validation value of the metric per epoch, one line per run."""
        curve = self.metric if self.metric.startswith("val/") else "val/" + self.metric.split("/", 1)[-1]
        histories = {label: run.history for label, run in self.runs.items()}
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


def _from_runs(run_dirs: Sequence[Path], metric: str | None) -> Comparison:
    table = pd.DataFrame([row for row in map(run_row, run_dirs) if row is not None])
    table = table.sort_values(["started_at", "run_id"], ascending=False, ignore_index=True)
    labels = table["run_id"].tolist()
    if len(set(labels)) < len(labels):  # runs in sweep subdirectories share ids (0, 1, ...)
        labels = ["/".join(Path(d).parts[-2:]) for d in table["run_dir"]]
    table.index = pd.Index(labels, name="run")
    table = table.dropna(axis=1, how="all")
    runs = {label: load_run(d) for label, d in zip(labels, table["run_dir"])}
    metric, mode = _metric_and_mode(metric, runs)
    hyperparameters = differing_config({label: run.config for label, run in runs.items()},
                                       {label: run.run_dir for label, run in runs.items()})
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
    hyperparameters = trials[sweep.params].copy()
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
        comparison.notes.append(f"{n} trial(s) in the sweep so far: nothing to compare")
    elif n < 2:
        comparison.notes.append(f"{n} run selected: nothing to compare (set run_ids, experiment or sweep_dir)")
    elif comparison.values.dropna().empty:
        logged = ", ".join(comparison.metrics.columns) or "no metrics"
        comparison.notes.append(f"no run logged {comparison.metric}; the runs have {logged}")
    elif comparison.hyperparameters.empty:
        comparison.notes.append("the runs share every hyperparameter")
    return comparison


# --- figures ------------------------------------------------------------------------

def metric_bars(values: pd.Series, metric: str) -> Figure:
    """One bar per run, labelled with its value."""
    fig = Figure(figsize=(max(4.5, 0.6 * len(values) + 2), 3.5), layout="constrained")
    ax = fig.subplots()
    bars = ax.bar(values.index.astype(str), values.to_numpy())
    ax.bar_label(bars, fmt="%.4f", fontsize=8)
    ax.set(xlabel="run", ylabel=metric, title=f"{metric} per run")
    ax.tick_params(axis="x", rotation=30)
    return fig


def curves(histories: Mapping[str, pd.DataFrame], column: str) -> Figure | None:
    """``column`` against the epoch, one line per history that logged it; None if none did."""
    histories = {label: h for label, h in histories.items() if column in h}
    if not histories:
        return None
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for label, history in histories.items():
        ax.plot(history["epoch"], history[column], marker="o", markersize=3, label=label)
    ax.set(xlabel="epoch", ylabel=column, title=f"{column} per epoch")
    ax.legend(fontsize=8)
    return fig


def metric_vs_hyperparameters(hyperparameters: pd.DataFrame, values: pd.Series,
                              best: str | None = None) -> Figure | None:
    """One panel per hyperparameter: the metric against its values, each point labelled.

    Numeric hyperparameters get a numeric axis (logarithmic when positive and spanning two
    decades or more, as learning rates do); others one position per value. ``best`` (a
    label) is ringed in red.

    Args:
        hyperparameters: one row per run, one column per hyperparameter.
        values: the metric per run, on the same index (its ``name`` labels the y axis).
        best: the label of the best run.
    """
    keys = list(hyperparameters.columns)
    if not keys:
        return None
    fig, axes = small_multiples(len(keys), ncols=3, panel=(4.5, 3.5))
    for ax, key in zip(axes, keys):
        x = hyperparameters[key]
        numeric = pd.to_numeric(x, errors="coerce")
        x = numeric if numeric.notna().all() else x.astype(str)
        y = values.loc[x.index]
        ax.scatter(x, y)
        for label, xv, yv in zip(x.index, x, y):
            ax.annotate(str(label), (xv, yv), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if best is not None and best in x.index:
            ax.scatter([x[best]], [y[best]], s=120, facecolors="none", edgecolors="tab:red", label=f"best ({best})")
            ax.legend(fontsize=7)
        if numeric.notna().all() and (numeric > 0).all() and numeric.max() >= 100 * numeric.min():
            ax.set_xscale("log")
        ax.set(xlabel=key, ylabel=values.name, title=key)
    fig.suptitle(f"{values.name} against each hyperparameter")
    return fig

