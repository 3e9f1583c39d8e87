"""batch_size=None: batches sized to the train split, so a small table still gets optimizer steps."""
from __future__ import annotations

import pytest

from factory.config import compose
from factory.data.datamodule import TabularDataModule, auto_batch_size
from tests.unit.data.test_datamodule import TableSource, _table


@pytest.mark.parametrize(("train_rows", "rows"), [(100, 64), (1_666, 64), (3_000, 93), (4_075, 127),
                                                  (20_000, 625), (35_000, 1024), (10**6, 1024)])
def test_auto_batch_is_train_rows_over_32_within_64_to_1024(train_rows, rows):
    assert auto_batch_size(train_rows) == rows


def test_setup_sizes_the_batch_from_the_train_split_and_keeps_an_explicit_one():
    # dedupe off: the generated table repeats 26 rows, and the sizes below are of all 400
    auto = TabularDataModule(TableSource(_table(n=400)), batch_size=None, val_fraction=0.2, test_fraction=0.2,
                             curation={"dedupe": False})
    assert auto.batch_size is None  # nothing is loaded before setup
    auto.setup("fit")
    assert auto.split_sizes["train"] == 240 and auto.batch_size == 64
    assert len(auto.train_dataloader()) == 240 // 64  # the ragged rest is dropped (reshuffled each epoch)
    fixed = TabularDataModule(TableSource(_table(n=400)), batch_size=1024, val_fraction=0.2, test_fraction=0.2)
    fixed.setup("fit")
    assert fixed.batch_size == 1024 and len(fixed.train_dataloader()) == 1


def test_data_configs_size_batches_by_default_and_presets_keep_theirs():
    assert compose("train", ["data=files", "data.source.path=x.csv", "data.source.target=y"]).data.batch_size is None
    for experiment, rows in [("fraud_detection", 2048), ("diagnosis", 64), ("digits", 64)]:  # as measured
        assert compose("train", [f"experiment={experiment}"]).data.batch_size == rows
