"""The compare and sweep reports' figures: the metric per run, learning curves, the metric
against each hyperparameter. Runs are named in legends beside the panels, never by text drawn
over the data (a label there can run out of its panel).
"""
from __future__ import annotations

import numbers
from typing import Mapping

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from factory.analysis.figure import Figure
from factory.analysis.plots import small_multiples
from factory.analysis.readable import UNSET, format_value

#: Runs colored one by one (and named in the legend) up to this many; more are one color.
MAX_NAMED_POINTS = 10

def metric_bars(values: pd.Series, metric: str, best: str | None = None) -> Figure:
    """One bar per run, labelled with its value (4 significant digits); ``best`` highlighted."""
    fig = Figure(figsize=(max(4.5, 0.6 * len(values) + 2), 3.5), layout="constrained")
    ax = fig.subplots()
    colors = ["tab:red" if label == best else "tab:blue" for label in values.index]
    bars = ax.bar(values.index.astype(str), values.to_numpy(), color=colors)
    ax.bar_label(bars, fmt="%.4g", fontsize=8)
    ax.margins(y=0.12)  # room for the value labels inside the panel
    ax.set(xlabel="run", ylabel=metric, title=f"{metric} per run" + (f" (best: {best}, red)" if best else ""))
    ax.tick_params(axis="x", rotation=30)
    return fig


def curves(histories: Mapping[str, pd.DataFrame], column: str) -> Figure | None:
    """``column`` against the epoch, one line per history that logged it (legend outside the
    axes); None if none did."""
    histories = {label: h for label, h in histories.items() if column in h}
    if not histories:
        return None
    fig = Figure(figsize=(7.5, 4), layout="constrained")
    ax = fig.subplots()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for label, history in histories.items():
        logged = history[["epoch", column]].dropna()
        # numbered from 1, as the console prints epochs (and plots.learning_curves draws them)
        ax.plot(logged["epoch"] + 1, logged[column], marker="o", markersize=3, label=label)
    ax.set(xlabel="epoch", ylabel=column, title=f"{column} per epoch")
    fig.legend(loc="outside right upper", fontsize=8)
    return fig


def metric_vs_hyperparameters(hyperparameters: pd.DataFrame, values: pd.Series,
                              best: str | None = None) -> Figure | None:
    """One panel per hyperparameter: the metric against its values.

    Numeric hyperparameters get a numeric axis (logarithmic when positive and spanning two
    decades or more, as learning rates do); others (text, lists, a mix of numbers and text,
    unset values) one position per value, labelled readably (``(unset)`` for None). Up to
    ``MAX_NAMED_POINTS`` runs get a color each, named in a legend beside the panels; ``best``
    (a label) is ringed in red.

    Args:
        hyperparameters: one row per run, one column per hyperparameter.
        values: the metric per run, on the same index (its ``name`` labels the y axis).
        best: the label of the best run.
    """
    keys = list(hyperparameters.columns)
    if not keys:
        return None
    fig, axes = small_multiples(len(keys), ncols=3, panel=(4.2, 3.3))
    fig.set_figwidth(fig.get_figwidth() + 1.8)  # the legend's column, beside the panels
    labels = list(values.index)
    named = len(labels) <= MAX_NAMED_POINTS
    colors = [f"C{i % 10}" for i in range(len(labels))] if named else ["tab:blue"] * len(labels)
    y = values.to_numpy(dtype=float)
    for ax, key in zip(axes, keys):
        column = hyperparameters.loc[labels, key]
        numeric = _numeric(column)
        if numeric is not None:
            ax.scatter(numeric, y, c=colors, zorder=2)
            x_best = numeric[labels.index(best)] if best in labels else None
            if (numeric > 0).all() and numeric.max() >= 100 * numeric.min():
                ax.set_xscale("log")
            elif (numeric == numeric.round()).all():  # epochs, layers, seeds: no 2.25 ticks
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        else:
            text = [format_value(v, UNSET) for v in column]
            categories = list(dict.fromkeys(text))
            positions = [categories.index(t) for t in text]
            ax.scatter(positions, y, c=colors, zorder=2)
            ax.set_xticks(range(len(categories)), categories, rotation=20 if len(categories) > 3 else 0,
                          fontsize=8)
            ax.set_xlim(-0.5, len(categories) - 0.5)
            x_best = positions[labels.index(best)] if best in labels else None
        if x_best is not None:
            ax.scatter([x_best], [y[labels.index(best)]], s=140, facecolors="none", edgecolors="tab:red",
                       linewidths=1.5, zorder=3)
        ax.set(xlabel=key, ylabel=values.name)
        ax.margins(x=0.08, y=0.12)
    handles = []
    if named:
        handles = [Line2D([], [], ls="", marker="o", color=c, label=str(label)) for label, c in zip(labels, colors)]
    if best is not None and best in labels:
        handles.append(Line2D([], [], ls="", marker="o", markersize=10, markerfacecolor="none",
                              markeredgecolor="tab:red", label=f"best ({best})"))
    if handles:
        fig.legend(handles=handles, loc="outside right center", fontsize=8, title="run")
    fig.suptitle(f"{values.name} against each hyperparameter")
    return fig


def _numeric(column: pd.Series) -> np.ndarray | None:
    """The column as floats when every value is a number (not a bool, not unset), else None."""
    if all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and not pd.isna(v) for v in column):
        return column.to_numpy(dtype=float)
    return None
