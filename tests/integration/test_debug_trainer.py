"""trainer=debug (Lightning's fast_dev_run) still writes the metrics history the README says is always written."""
from __future__ import annotations

import csv

from factory import compose
from factory.rundir.layout import HISTORY
from factory.training.recipe import run


def test_debug_trainer_writes_the_metrics_history(isolated_env):
    result = run(compose("train", ["trainer=debug", "data.source.rows=2000"]))  # logger=wandb: the default
    with open(result.run_dir / HISTORY) as f:
        rows = list(csv.DictReader(f))
    assert any(row.get("val/loss") for row in rows) and any(row.get("test/loss") for row in rows)
    assert any(row.get("train/loss_epoch") for row in rows)
