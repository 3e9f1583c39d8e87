"""factory.analysis.explore on small hand-made tables (and one real data config)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from factory.analysis import explore
from factory.data.spec import TableSchema

SCHEMA = TableSchema(features={"amount": "numeric", "age": "numeric", "channel": "categorical"},
                     target="label", task="binary", positive_label="bad")
FRAME = pd.DataFrame({
    "amount": [1.0, 2.0, 3.0, 4.0, np.nan, 6.0],
    "age": [5.0, 5.0, 5.0, 5.0, 5.0, 5.0],            # constant: no correlation
    "channel": ["web", "web", "pos", None, "web", "pos"],
    "label": ["good", "good", "good", "bad", "bad", "bad"],
})


def test_schema_table_counts_missing_and_distinct_per_column():
    table = explore.schema_table(FRAME, SCHEMA)
    assert list(table.index) == ["amount", "age", "channel", "label"]
    assert table.loc["label", "kind"] == "target" and table.loc["channel", "kind"] == "categorical"
    assert table.loc["amount", "missing"] == 1 and table.loc["amount", "missing %"] == pytest.approx(16.67)
    assert table.loc["channel", "distinct"] == 2 and table.loc["age", "distinct"] == 1


def test_split_table_gives_rows_and_shares():
    table = explore.split_table({"train": 70, "val": 15, "test": 15})
    assert table["rows"].tolist() == [70, 15, 15] and table["share"].tolist() == [0.7, 0.15, 0.15]


def test_target_relation_uses_the_positive_label_and_drops_constant_columns():
    relation = explore.target_relation(FRAME, SCHEMA)
    assert list(relation.index) == ["amount"]  # age is constant: correlation undefined
    expected = FRAME["amount"].corr((FRAME["label"] == "bad").astype(float))
    assert relation["amount"] == pytest.approx(expected) and relation["amount"] > 0
    assert relation.name == "correlation with target"


def test_target_relation_for_multiclass_is_mutual_information_strongest_first():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    frame = pd.DataFrame({"signal": y + rng.normal(0, 0.1, 300), "noise": rng.normal(size=300), "y": y})
    schema = TableSchema(features={"noise": "numeric", "signal": "numeric"}, target="y", task="multiclass")
    relation = explore.target_relation(frame, schema)
    assert relation.name == "mutual information"
    assert list(relation.index) == ["signal", "noise"] and relation["signal"] > 0.5 > relation["noise"]


def test_missing_share_lists_only_columns_with_missing_values():
    missing = explore.missing_share(FRAME, ["amount", "age", "channel", "label"])
    assert missing.to_dict() == pytest.approx({"amount": 1 / 6, "channel": 1 / 6})
    assert explore.missing_share(FRAME, ["age"]).empty


def test_figures_draw_what_there_is_and_none_otherwise():
    fig = explore.target_plot(FRAME["label"], "binary")
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["bad", "good"]
    assert ax.get_title() == "Class balance"
    assert isinstance(explore.target_plot(FRAME["amount"], "regression"), Figure)

    hist = explore.numeric_histograms(FRAME, SCHEMA.numeric, max_columns=1)
    assert [a.get_title() for a in hist.axes] == ["amount"]  # most distinct values first
    levels = explore.categorical_levels(FRAME, SCHEMA.categorical, top=5)
    assert levels.axes[0].get_title() == "channel (3 levels)"  # None counts as a level
    assert explore.relation_plot(explore.target_relation(FRAME, SCHEMA), "label").axes[0].get_xlabel() \
        == "correlation with target"
    assert len(explore.missing_plot(explore.missing_share(FRAME, list(FRAME))).axes[0].patches) == 2

    assert explore.numeric_histograms(FRAME, []) is None
    assert explore.categorical_levels(FRAME, []) is None
    assert explore.relation_plot(pd.Series(dtype=float), "label") is None
    assert explore.missing_plot(pd.Series(dtype=float)) is None
    # each shows itself in a kernel without %matplotlib inline (factory.analysis.figure)
    assert all(hasattr(f, "_repr_png_") for f in (fig, hist, levels))


def test_load_gives_the_split_training_uses():
    data = explore.load(["data=breast_cancer"])
    assert data.source == "breast_cancer" and data.split == "train"
    assert len(data.frame) == data.split_sizes["train"] and sum(data.split_sizes.values()) == 569
    assert data.schema.target in data.frame and "binary" in data.headline


def test_the_positive_label_is_read_in_the_target_columns_type():
    # Training compares "1" with an integer column (and 1 with a string one) in the column's type.
    frame = pd.DataFrame({"x": [0.0, 1.0, 0.0, 1.0], "y": [0, 1, 0, 1]})
    schema = TableSchema(features={"x": "numeric"}, target="y", task="binary", positive_label="1")
    assert explore.target_relation(frame, schema)["x"] == pytest.approx(1.0)
    frame["y"] = ["0", "1", "0", "1"]
    schema = TableSchema(features={"x": "numeric"}, target="y", task="binary", positive_label=1)
    assert explore.target_relation(frame, schema)["x"] == pytest.approx(1.0)
