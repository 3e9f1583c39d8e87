"""What labeling by uncertainty buys: a simulated annotator on a data config with its labels held back.

The train split is the unlabeled pool; a simulated annotator reveals a row's label when a strategy
(``factory.data.labeling.select``, the one ``scripts/label.py export`` uses) picks it. After each
batch a logistic regression is refitted on the labels so far, on the model's own preprocessing
(standardized numerics, missing indicators, one-hot codes; as the ``logistic_regression``
baseline), and scored on the untouched test split. A fast model keeps the whole curve to seconds.

Example:
    >>> from factory.analysis import active_learning
    >>> results = active_learning.simulate(["data=fraud", "data.source.rows=20000"], rounds=12)
    >>> active_learning.plot(results)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from factory.analysis.figure import Figure
from factory.errors import ConfigError

METRICS = ("auroc", "pr_auc", "accuracy")


def simulate(config, strategies: Sequence[str] = ("uncertainty", "random"), *, start: int = 20, batch: int = 20,
             rounds: int = 10, repeats: int = 3, metric: str = "auroc", seed: int = 0) -> pd.DataFrame:
    """Learning curves: the held-out ``metric`` after each batch of labels, per strategy and repeat.

    Args:
        config: a composed train config, or overrides to compose one (``["data=fraud"]``).
        strategies: ``uncertainty``, ``random``, ``diverse`` (``factory.data.labeling.STRATEGIES``).
        start: labels revealed at random before the first fit (the same rows for every strategy
            in a repeat), one of each class among them: a classifier needs two classes.
        batch: labels revealed per round (the ``n`` of ``label.py export``).
        rounds: batches after the first fit.
        repeats: independent starts (seeds); the plot shows their mean and range.
        metric: ``auroc`` or ``pr_auc`` (binary), ``accuracy`` (any classification).
        seed: the first repeat's seed.

    Returns:
        One row per (strategy, repeat, round): ``strategy``, ``repeat``, ``labels``, ``metric``
        (its name in ``attrs["metric"]``); ``attrs["all_labels"]``: the metric with every train
        label, the ceiling the curves approach; ``attrs["pool"]``: the pool's rows.
    """
    from factory.data.labeling import STRATEGIES, entropy, select

    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or metric not in METRICS:
        raise ConfigError(f"strategies {list(strategies)}, metric {metric!r}: expected strategies among "
                          f"{', '.join(STRATEGIES)} and a metric among {', '.join(METRICS)}")
    x, y, x_test, y_test, task = _design(config)
    if task == "regression" or (metric != "accuracy" and task != "binary"):
        raise ConfigError(f"metric {metric!r} needs a {'binary' if metric != 'accuracy' else 'classification'} "
                          f"task; this data's task is {task}")
    rows = []
    for repeat in range(repeats):
        rng = np.random.default_rng(seed + repeat)
        first = _start(rng, y, start)
        for strategy in strategies:
            labeled = list(first)
            for round_ in range(rounds + 1):
                model = _fit(x[labeled], y[labeled], seed + repeat)
                rows.append({"strategy": strategy, "repeat": repeat, "labels": len(labeled),
                             "metric": _score(model, x_test, y_test, metric)})
                if round_ == rounds:
                    break
                pool = np.setdiff1d(np.arange(len(y)), labeled)  # the rows whose labels are still held back
                p = model.predict_proba(x[pool])
                u = entropy(p[:, 1] if p.shape[1] == 2 else p)
                picked = select(u, batch, strategy, features=x[pool] if strategy == "diverse" else None,
                                seed=seed + repeat * 1000 + round_)
                labeled += pool[picked].tolist()  # the simulated annotator reveals these labels
    results = pd.DataFrame(rows)
    results.attrs.update(metric=metric, all_labels=_score(_fit(x, y, seed), x_test, y_test, metric), pool=len(y))
    return results


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: the mean metric at each label count (columns), repeats averaged."""
    table = results.groupby(["strategy", "labels"])["metric"].mean().unstack("labels").round(4)
    table.columns.name = f"{results.attrs.get('metric', 'metric')} by labels"
    return table


def headline(results: pd.DataFrame) -> str:
    """One Markdown line: each strategy's mean metric at the last label count, and with every label."""
    metric, last = results.attrs.get("metric", "metric"), results["labels"].max()
    final = results[results["labels"] == last].groupby("strategy", sort=False)["metric"].mean()
    parts = ", ".join(f"**{strategy}** {value:.3f}" for strategy, value in final.items())
    ceiling = results.attrs.get("all_labels")
    tail = f"; all {results.attrs.get('pool', 0):,} train labels: {ceiling:.3f}" if ceiling is not None else ""
    return f"Test {metric} with {last:,} labels: {parts}{tail}."


def plot(results: pd.DataFrame) -> Figure:
    """The held-out metric against the number of labels: each strategy's mean over repeats, its
    range shaded, and the metric with every train label as a dashed line."""
    metric = results.attrs.get("metric", "metric")
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    for strategy, curve in results.groupby("strategy", sort=False):
        stats = curve.groupby("labels")["metric"].agg(["mean", "min", "max"])
        line, = ax.plot(stats.index, stats["mean"], marker="o", markersize=3, label=strategy)
        ax.fill_between(stats.index, stats["min"], stats["max"], color=line.get_color(), alpha=0.15)
    if "all_labels" in results.attrs:
        ax.axhline(results.attrs["all_labels"], color="grey", linestyle="--",
                   label=f"all {results.attrs.get('pool', '')} train labels")
    ax.set(xlabel="labels revealed", ylabel=f"test {metric}", title=f"Active learning: test {metric} by labels")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def _design(config) -> tuple:
    """(train x, train y, test x, test y, task): the preprocessed blocks as dense float arrays."""
    from omegaconf import DictConfig

    from factory.config import compose
    from factory.config.instantiate import build

    cfg = config if isinstance(config, DictConfig) else compose("train", list(config))
    datamodule = build(cfg.data, "data")
    datamodule.setup("fit")
    transform = datamodule.preprocessor.transform
    x_num, x_cat, y = (np.asarray(a) for a in transform(datamodule.split_table("train")))
    t_num, t_cat, t_y = (np.asarray(a) for a in transform(datamodule.split_table("test")))
    if x_cat.shape[1]:
        from sklearn.preprocessing import OneHotEncoder

        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(x_cat)
        x, x_test = np.hstack([x_num, encoder.transform(x_cat)]), np.hstack([t_num, encoder.transform(t_cat)])
    else:
        x, x_test = x_num, t_num
    flat = lambda a: np.asarray(a, dtype=np.float64).reshape(len(a), -1)  # noqa: E731  (images: one row each)
    return flat(x), y, flat(x_test), t_y, datamodule.input_spec.task


def _start(rng: np.random.Generator, y: np.ndarray, n: int) -> list[int]:
    """``n`` random rows, the last ones swapped for one row of each class they miss (so every
    repeat starts from ``n`` labels, and a rare class is there once)."""
    first = rng.choice(len(y), size=min(n, len(y)), replace=False).tolist()
    missing = [label for label in np.unique(y) if label not in y[first]]
    for i, label in enumerate(missing, start=1):
        first[-i] = int(rng.choice(np.flatnonzero(y == label)))
    return first


def _fit(x: np.ndarray, y: np.ndarray, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, random_state=seed).fit(x, y)


def _score(model, x: np.ndarray, y: np.ndarray, metric: str) -> float:
    from sklearn import metrics

    if metric == "accuracy":
        return float(metrics.accuracy_score(y, model.predict(x)))
    p = model.predict_proba(x)[:, 1]
    return float(metrics.roc_auc_score(y, p) if metric == "auroc" else metrics.average_precision_score(y, p))
