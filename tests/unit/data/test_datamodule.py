"""TabularDataModule end to end on a hand-built table: setup, loaders, checkpointed preprocessing."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import pytorch_lightning as pl
import torch

from factory.data.datamodule import TabularDataModule
from factory.data.sources.base import DataSource, LoadedTable
from factory.data.spec import TableSchema
from factory.errors import ConfigError, DataError

SCHEMA = TableSchema(
    features={"amount": "numeric", "city": "categorical", "merchant": "categorical"},
    target="churned",
    task="binary",
    positive_label="Yes",
)


def _table(n: int = 30, shift: float = 0.0) -> pa.Table:
    rows = np.arange(n)
    return pa.table(
        {
            "amount": pa.array(np.where(rows % 7 == 3, np.nan, rows * 1.5 + shift), from_pandas=True),
            "city": [["north", "south", None][i % 3] for i in rows],
            "merchant": [f"m{i % 5}" for i in rows],
            "churned": ["Yes" if i % 3 == 0 else "No" for i in rows],
        }
    )


class TableSource(DataSource):
    """A source that hands out a fixed table and counts its loads."""

    name = "tiny"

    def __init__(self, table: pa.Table, schema: TableSchema = SCHEMA):
        self.table, self.schema, self.loads = table, schema, 0

    def load(self) -> LoadedTable:
        self.loads += 1
        return LoadedTable(self.table, self.schema)


def _datamodule(table: pa.Table | None = None, **kwargs) -> TabularDataModule:
    params = {"batch_size": 8, "val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0, "max_onehot": 3, **kwargs}
    return TabularDataModule(TableSource(_table() if table is None else table), **params)


def test_setup_loads_once_and_exposes_the_split():
    dm = _datamodule()
    dm.setup("fit")
    spec = dm.input_spec
    assert spec.n_numeric == 1 + 1 + (2 + 2) and spec.embed_cardinalities == [5 + 2]  # merchant embedded
    assert spec.class_counts == [12, 6] and dm.class_labels == ["No", "Yes"]
    assert dm.split_sizes == {"train": 18, "val": 6, "test": 6}
    assert dm.split_table("test").num_rows == 6 and dm.split_table("val").column_names == _table().column_names
    assert dm.source_name == "tiny" and len(dm.fingerprint) == 64
    dm.setup("test")
    assert dm.source.loads == 1


def test_loaders_yield_typed_batches():
    dm = _datamodule()
    dm.setup("fit")
    train = list(dm.train_dataloader())
    assert [len(b[0]) for b in train] == [8, 8]  # 18 rows: the ragged 2-row batch is dropped
    x_num, x_cat, y = train[0]
    assert x_num.dtype == torch.float32 and x_num.shape == (8, dm.input_spec.n_numeric)
    assert x_cat.dtype == torch.int64 and x_cat.shape == (8, 1)
    assert y.dtype == torch.int64 and set(y.tolist()) <= {0, 1}
    assert sum(len(b[0]) for b in dm.val_dataloader()) == 6
    test_rows = torch.cat([b[2] for b in dm.test_dataloader()])
    expected = [1 if v == "Yes" else 0 for v in dm.split_table("test").column("churned").to_pylist()]
    assert test_rows.tolist() == expected  # in order, aligned with split_table
    assert len(dm.predict_dataloader()) == len(dm.test_dataloader())


def test_regression_and_images():
    schema = TableSchema({f"p{i}": "numeric" for i in range(4)}, "size", "regression", image_shape=(1, 2, 2))
    table = pa.table({**{f"p{i}": np.arange(20.0) * i for i in range(4)}, "size": np.linspace(0, 1, 20)})
    dm = TabularDataModule(TableSource(table, schema), batch_size=4)
    dm.setup("fit")
    x_num, x_cat, y = next(iter(dm.train_dataloader()))
    assert x_num.shape == (4, 1, 2, 2) and x_cat.shape == (4, 0) and y.dtype == torch.float32
    assert dm.input_spec.class_counts == [] and dm.class_labels == []


def test_state_dict_round_trip_reuses_training_preprocessing():
    trained = _datamodule()
    trained.setup("fit")
    state = json.loads(json.dumps(trained.state_dict()))
    assert set(state) == {"preprocessor"}
    other = _table(shift=100.0)  # refitting on this would give other statistics

    before = _datamodule(other)
    before.load_state_dict(state)
    before.setup("test")
    after = _datamodule(other)
    after.setup("test")
    assert after.state_dict() != state  # fitted on its own data ...
    after.load_state_dict(state)  # ... until restored, as Lightning does after setup
    for dm in (before, after):
        assert dm.state_dict() == state and dm.input_spec.n_numeric == trained.input_spec.n_numeric
        expected = trained.preprocessor.transform(dm.split_table("test"))[0]
        np.testing.assert_array_equal(torch.cat([b[0] for b in dm.test_dataloader()]).numpy(), expected)


def test_a_checkpoint_carries_the_preprocessing(tmp_path):
    class Tiny(pl.LightningModule):
        def __init__(self, width: int):
            super().__init__()
            self.net = torch.nn.Linear(width, 1)

        def training_step(self, batch, _):
            x_num, _, y = batch
            return torch.nn.functional.binary_cross_entropy_with_logits(self.net(x_num).squeeze(1), y.float())

        validation_step = test_step = training_step

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    flags = dict(
        accelerator="cpu",
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trained = _datamodule()
    trained.setup("fit")
    trainer = pl.Trainer(max_epochs=1, **flags)
    trainer.fit(Tiny(trained.input_spec.n_numeric), datamodule=trained)
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)

    fresh = _datamodule(_table(shift=100.0))
    pl.Trainer(**flags).test(Tiny(trained.input_spec.n_numeric), datamodule=fresh, ckpt_path=ckpt, weights_only=True)
    assert fresh.state_dict() == trained.state_dict()


def test_bad_fractions_fail_at_construction():
    with pytest.raises(ConfigError, match="data.test_fraction"):
        _datamodule(test_fraction=1.5)


def test_invalid_table_fails_in_setup():
    dm = _datamodule(_table().slice(0, 0))
    with pytest.raises(DataError, match="'tiny'.*empty"):
        dm.setup("fit")
