"""The scikit-learn baselines on tiny tables: categoricals, missing values and unseen levels;
a baseline that cannot run for the task is refused before any training."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from factory import compose
from factory.data.datamodule import TabularDataModule
from factory.data.sources.base import DataSource, LoadedTable
from factory.data.spec import TableSchema
from factory.errors import ConfigError
from factory.rundir.layout import MANIFEST
from factory.training import baselines
from factory.training.recipe import run

ROWS = 240
FEATURES = {"amount": "numeric", "city": "categorical", "merchant": "categorical"}


class TableSource(DataSource):
    name = "tiny"

    def __init__(self, table: pa.Table, schema: TableSchema):
        self.table, self.schema = table, schema

    def load(self) -> LoadedTable:
        return LoadedTable(self.table, self.schema)


def _features(rows: np.ndarray) -> dict:
    """``city`` carries the signal; ``amount`` has NaNs, ``city`` nulls; one row in ten has a ``merchant``
    level of its own, so every split holds levels the train split never saw."""
    return {
        "amount": pa.array(np.where(rows % 9 == 4, np.nan, (rows * 37 % 100) / 10.0), from_pandas=True),
        "city": [[None, "north", "south", "east"][i % 4] for i in rows],
        "merchant": [f"once_{i}" if i % 10 == 7 else f"m{i % 3}" for i in rows],
    }


def _datamodule(task: str) -> TabularDataModule:
    rows = np.arange(ROWS)
    city = rows % 4
    target = {"binary": np.where(city == 1, "Yes", "No"),
              "multiclass": city % 3,
              "regression": city * 2.0 + (rows % 5) / 10.0}[task]
    schema = TableSchema(FEATURES, "y", task, positive_label="Yes" if task == "binary" else None)
    dm = TabularDataModule(TableSource(pa.table({**_features(rows), "y": target}), schema),
                           val_fraction=0.2, test_fraction=0.25, split_seed=0)
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("task, metric, at_least", [
    ("binary", "auroc", 0.99), ("multiclass", "accuracy", 0.9), ("regression", "r2", 0.9)])
def test_gradient_boosting_fits_categoricals_missing_values_and_unseen_levels(task, metric, at_least):
    dm = _datamodule(task)
    train_levels = set(dm.split_table("train").column("merchant").to_pylist())
    assert set(dm.split_table("test").column("merchant").to_pylist()) - train_levels  # unseen at test time
    assert dm.split_table("train").column("amount").null_count and dm.split_table("train").column("city").null_count
    metrics = baselines.hist_gradient_boosting(dm, seed=0)
    assert set(metrics) == {"binary": {"pr_auc", "auroc", "accuracy", "f1"}, "multiclass": {"accuracy", "f1_macro"},
                            "regression": {"mse", "mae", "r2"}}[task]
    assert metrics[metric] >= at_least  # the signal is in the categorical `city`: it must be split natively


def test_run_all_keys_each_baseline_by_name():
    found = baselines.run_all(_datamodule("binary"), ["logistic_regression", "hist_gradient_boosting"])
    assert list(found) == ["logistic_regression", "hist_gradient_boosting"]
    assert all(found[name]["auroc"] > 0.9 for name in found)
    assert baselines.run_all(_datamodule("binary"), None) == {}


def test_logistic_regression_on_regression_is_refused_before_training(tmp_path):
    table = tmp_path / "prices.csv"
    rows = np.arange(60)
    table.write_text("size,price\n" + "".join(f"{i},{i * 1.5 + 0.25}\n" for i in rows))
    cfg = compose("train", ["data=files", f"data.source.path={table}", "data.source.target=price",
                            "baseline=[hist_gradient_boosting,logistic_regression]", "logger=csv"])
    with pytest.raises(ConfigError) as info:
        run(cfg)
    assert str(info.value) == ("baseline: logistic_regression needs a classification task and this data's task is "
                               "regression; use baseline=[hist_gradient_boosting]")
    (manifest,) = tmp_path.rglob(MANIFEST)
    assert json.loads(manifest.read_text())["status"] == "failed"
    assert not list(tmp_path.rglob("*.ckpt"))  # nothing was trained
