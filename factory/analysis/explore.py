"""A data config's table before training: schema, splits, class balance, distributions,
relation to the target, missing values.

``load`` gives the table a training run of the config would train on (same source, same
split); everything else is a pure function of a pandas table and its ``TableSchema``,
returning a DataFrame or a matplotlib figure (``None`` when there is nothing to draw,
e.g. no categorical column). ``notebooks/01_explore_data.ipynb`` is these calls in order.

Example:
    >>> data = explore.load(["data=fraud", "data.source.rows=20000"])
    >>> explore.schema_table(data.frame, data.schema)
    >>> explore.relation_plot(explore.target_relation(data.frame, data.schema), data.schema.target)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from factory.analysis.figure import Figure  # shows itself in a kernel without %matplotlib inline
from factory.data.spec import TableSchema
from factory.analysis.plots import small_multiples


@dataclass
class DataSplit:
    """One split of a data config's table, as the DataModule makes it.

    Attributes:
        source: the source's short name (``fraud``, ``files``).
        schema: what the source declares: features and their kinds, target, task.
        split_sizes: rows per split (``train``, ``val``, ``test``).
        split: which split ``frame`` holds.
        frame: the split's raw rows (before preprocessing).
    """

    source: str
    schema: TableSchema
    split_sizes: dict[str, int]
    split: str
    frame: pd.DataFrame

    @property
    def columns(self) -> list[str]:
        """The features and the target (a table may hold other columns)."""
        return [*self.schema.features, self.schema.target]

    @property
    def headline(self) -> str:
        """One Markdown line: source, task, target and feature counts."""
        s = self.schema
        return (f"## `{self.source}`: {s.task}, target `{s.target}`, {len(s.features)} features "
                f"({len(s.numeric)} numeric, {len(s.categorical)} categorical); {self.split} split")


def load(config: DictConfig | Sequence[str], split: str = "train") -> DataSplit:
    """Load, validate and split the data of a train config, as a training run would.

    Args:
        config: a composed ``train`` config, or overrides to compose one
            (``["data=breast_cancer"]``).
        split: ``train``, ``val`` or ``test``. Statistics on ``train`` are what the
            preprocessing is fitted on.

    Raises:
        ConfigError, DataError: a bad config or a table that does not match its schema.
    """
    from factory.config import compose
    from factory.config.instantiate import build

    cfg = config if isinstance(config, DictConfig) else compose("train", config)
    datamodule = build(cfg.data, "data")
    datamodule.setup("fit")  # load, validate, split: the same split training uses
    return DataSplit(datamodule.source_name, datamodule.schema, dict(datamodule.split_sizes), split,
                     datamodule.split_table(split).to_pandas())


def schema_table(frame: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """One row per feature and the target: kind, dtype, missing count and %, distinct values."""
    columns = [*schema.features, schema.target]
    return pd.DataFrame({
        "kind": [schema.features.get(c, "target") for c in columns],
        "dtype": [str(frame[c].dtype) for c in columns],
        "missing": [int(frame[c].isna().sum()) for c in columns],
        "missing %": [round(100 * float(frame[c].isna().mean()), 2) if len(frame) else 0.0 for c in columns],
        "distinct": [int(frame[c].nunique()) for c in columns],
    }, index=pd.Index(columns, name="column"))


def split_table(split_sizes: dict[str, int]) -> pd.DataFrame:
    """Rows and share of the table per split."""
    rows = pd.Series(split_sizes, name="rows", dtype="int64")
    total = rows.sum()
    return rows.to_frame().assign(share=(rows / total).round(3) if total else 0.0)


def target_plot(target: pd.Series, task: str) -> Figure:
    """Class balance (bars labelled with their share) or, for regression, a histogram."""
    if task == "regression":
        fig = Figure(figsize=(6, 3.5), layout="constrained")
        ax = fig.subplots()
        ax.hist(target.dropna(), bins=40)
        ax.set(xlabel=target.name, ylabel="rows", title="Target distribution")
        return fig
    counts = target.value_counts().sort_index()
    fig = Figure(figsize=(max(4.5, 0.5 * len(counts) + 2), 3.5), layout="constrained")
    ax = fig.subplots()
    bars = ax.bar([str(k) for k in counts.index], counts.to_numpy())
    ax.bar_label(bars, labels=[f"{v / counts.sum():.1%}" for v in counts], fontsize=8)
    ax.set(xlabel=target.name, ylabel="rows", title="Class balance")
    return fig


def numeric_histograms(frame: pd.DataFrame, columns: Sequence[str], max_columns: int = 24) -> Figure | None:
    """A histogram per numeric column, those with the most distinct values first.

    Args:
        frame: the table.
        columns: the numeric columns (``schema.numeric``).
        max_columns: at most this many panels (wide image tables have hundreds of pixels).

    Returns:
        The figure, or None without numeric columns.
    """
    shown = sorted(columns, key=lambda c: -frame[c].nunique())[:max_columns]
    if not shown:
        return None
    fig, axes = small_multiples(len(shown), ncols=4, panel=(3.2, 2.4))
    for ax, column in zip(axes, shown):
        ax.hist(frame[column].dropna().astype(float), bins=30)
        ax.set_title(column, fontsize=9)
    fig.suptitle(f"Numeric features ({len(shown)} of {len(columns)})")
    return fig


def categorical_levels(frame: pd.DataFrame, columns: Sequence[str], top: int = 10) -> Figure | None:
    """Row counts of the ``top`` most frequent levels of each categorical column (missing included).

    Returns:
        The figure, or None without categorical columns.
    """
    if not columns:
        return None
    fig = Figure(figsize=(4.5 * len(columns), 0.3 * top + 1.5), layout="constrained")
    for ax, column in zip(fig.subplots(1, len(columns), squeeze=False).ravel(), columns):
        counts = frame[column].value_counts(dropna=False)
        shown = counts.head(top)[::-1]
        ax.barh([str(k) for k in shown.index], shown.to_numpy())
        ax.set(title=f"{column} ({len(counts)} levels)", xlabel="rows")
    fig.suptitle(f"Top {top} levels per categorical")
    return fig


def target_relation(frame: pd.DataFrame, schema: TableSchema) -> pd.Series:
    """How each numeric feature relates to the target, strongest first.

    Binary and regression: Pearson correlation with the target (point-biserial for a 0/1
    target; ``positive_label`` marks class 1). Multiclass: mutual information
    (scikit-learn's ``mutual_info_classif``, missing values imputed with the median),
    which needs no order on the classes.

    Returns:
        One value per numeric feature (NaN ones, e.g. constant columns, dropped), sorted by
        absolute value, descending; its ``name`` says which measure it is.
    """
    x = frame[schema.numeric].astype(float)
    target = frame[schema.target]
    if x.empty:
        return pd.Series(dtype=float, name="correlation with target")
    if schema.task == "multiclass":
        from sklearn.feature_selection import mutual_info_classif

        values = mutual_info_classif(x.fillna(x.median()).fillna(0.0), target.astype(str), random_state=0)
        relation = pd.Series(values, index=x.columns, name="mutual information")
    else:
        if schema.positive_label is not None:  # compared as training compares it: in the column's type
            import pyarrow as pa

            from factory.data.validation import label_mask

            mask = label_mask(pa.chunked_array([pa.array(target, from_pandas=True)]), schema.positive_label)
            y = pd.Series(mask.to_numpy(zero_copy_only=False), index=target.index)
        else:
            y = target
        relation = x.corrwith(y.astype(float)).rename("correlation with target")
    return relation.dropna().sort_values(key=abs, ascending=False)


def relation_plot(relation: pd.Series, target: str, top: int = 30) -> Figure | None:
    """Horizontal bars of ``target_relation``'s ``top`` strongest features (negative in red)."""
    shown = relation.head(top)[::-1]
    if shown.empty:
        return None
    fig = Figure(figsize=(6, 0.25 * len(shown) + 1.5), layout="constrained")
    ax = fig.subplots()
    ax.barh(shown.index, shown.to_numpy(), color=np.where(shown >= 0, "tab:blue", "tab:red"))
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set(xlabel=relation.name, title=f"Numeric features vs {target} (top {len(shown)})")
    return fig


def missing_share(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """Share of rows missing, for the columns that have any, smallest first."""
    shares = frame[list(columns)].isna().mean()
    return shares[shares > 0].sort_values()


def missing_plot(missing: pd.Series) -> Figure | None:
    """Bars of ``missing_share`` (labelled with the share); None when nothing is missing."""
    if missing.empty:
        return None
    fig = Figure(figsize=(6, 0.3 * len(missing) + 1.5), layout="constrained")
    ax = fig.subplots()
    bars = ax.barh(missing.index, 100 * missing.to_numpy())
    ax.bar_label(bars, labels=[f"{v:.1%}" for v in missing], fontsize=8)
    ax.set(xlabel="% of rows missing", title="Missing values")
    return fig
