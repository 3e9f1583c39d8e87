"""The run report's summary and data section, from real run records and a real DataModule on a tiny CSV."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from factory.analysis import run_summary
from factory.analysis.notebook import LoadedRun
from factory.data import TabularDataModule
from factory.data.sources import FileSource
from factory.rundir.manifest import RunRecord


@pytest.mark.parametrize("value, expected", [
    (0.982, "0.982"), (0.40403384, "0.404"), (5.7249, "5.725"), (-0.62914, "-0.6291"), (1.5e-5, "1.5e-05"),
    (4289, "4,289"), (12345.0, "12,345"), (123456789.123, "123,456,789"),
    (float("nan"), "—"), (None, "—"), (True, "True"), ("digits", "digits"),
])
def test_number_rounds_to_four_significant_digits_counts_whole_and_blanks_what_is_missing(value, expected):
    assert run_summary.number(value) == expected


def _run(tmp_path: Path, metrics: dict, **record) -> LoadedRun:
    fields = dict(run_id="2026-12-07_01-36-26_f778b0", task_name="diagnosis", run_dir=str(tmp_path),
                  status="completed", started_at="2026-12-07T01:36:32.827+00:00",
                  command=["python", "scripts/train.py", "experiment=diagnosis", "trainer.max_epochs=2"],
                  git={"commit": "8a2f676c7e88092158d38d3a95e844d465181632", "dirty": True},
                  data={"source": "breast_cancer", "rows": {"train": 370, "val": 86, "test": 113}},
                  monitor={"metric": "val/loss", "mode": "min", "best": 0.404}, seed=42)
    fields.update(record)
    config = OmegaConf.create({"model": {"net": {"_target_": "factory.models.TabularMLP"}},
                               "trainer": {"max_epochs": 2}})
    return LoadedRun(tmp_path, RunRecord(**fields), config, metrics)


BINARY = {"val": {"val/loss": 0.404, "val/pr_auc": 0.98769}, "test": {"test/loss": 0.38454, "test/pr_auc": 0.982},
          "baseline": {"logistic_regression": {"pr_auc": 0.99047}, "hist_gradient_boosting": {"pr_auc": 0.98512}}}


def test_summary_says_status_headline_beside_baseline_data_model_when_and_commit(tmp_path: Path):
    text = run_summary.summary(_run(tmp_path, BINARY), task="binary")
    assert text.splitlines() == [
        # the baselines have no loss: the monitored metric, then one they have, side by side
        "- **completed**: test loss **0.3845**; test pr_auc **0.982** (logistic regression 0.9905, "
        "gradient boosting 0.9851)",
        "- data: breast_cancer, 569 rows (train 370 / val 86 / test 113), binary; model: TabularMLP",
        "- ran 2026-12-07 01:36 UTC, commit `8a2f676` (with uncommitted changes)",
    ]


def test_headline_is_the_monitored_metric_beside_the_baselines_same_metric(tmp_path: Path):
    metrics = {"test": {"test/pr_auc": 0.5012, "test/loss": 0.2}, "baseline": {"pr_auc": 0.41}}  # an old run's
    run = _run(tmp_path, metrics, monitor={"metric": "val/pr_auc", "mode": "max", "best": 0.52})
    assert run_summary.headline(run) == "test pr_auc **0.5012** (logistic regression 0.41)"


def test_a_failed_run_says_so_first_with_its_best_validation_value(tmp_path: Path):
    run = _run(tmp_path, {}, status="failed", error="RuntimeError: the data loader died", git=None)
    lines = run_summary.summary(run).splitlines()
    assert lines[0].startswith("**This run is failed**: `RuntimeError: the data loader died`")
    assert "- **failed**: best val/loss **0.404**" in lines
    assert lines[-1] == "- ran 2026-12-07 01:36 UTC, no git commit recorded"


def test_config_details_fold_the_whole_command_and_config(tmp_path: Path):
    block = run_summary.config_details(_run(tmp_path, BINARY))
    assert block.startswith("<details><summary>Command, lineage and config</summary>") and block.endswith("</details>")
    assert "python scripts/train.py experiment=diagnosis trainer.max_epochs=2" in block  # not cut
    assert "max_epochs: 2" in block and "<td>42</td>" in block  # the config; the lineage (seed)


@pytest.fixture
def datamodule(tmp_path: Path):
    """300 rows of a real CSV: a 2:1 class balance, a numeric column missing every 10th value."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "colour": rng.choice(["red", "blue"], 300),
                          "y": np.where(np.arange(300) % 3 == 0, "bad", "good")})
    frame.loc[::10, "x"] = np.nan
    frame.to_csv(tmp_path / "table.csv", index=False)

    def build(task: str | None = None, positive_label: str | None = "bad"):
        source = FileSource(path=str(tmp_path / "table.csv"), target="y", task=task, positive_label=positive_label)
        # dedupe off: the 30 rows missing x repeat one another (6 combinations); counts below are of all 300
        module = TabularDataModule(source, batch_size=64, val_fraction=0.2, test_fraction=0.2,
                                   curation={"dedupe": False})
        module.setup("fit")
        return module
    return build


def test_split_balance_counts_each_class_per_split(datamodule):
    table = run_summary.split_balance(datamodule())
    assert list(table.index) == ["train", "val", "test"]
    assert list(table.columns) == ["rows", "bad", "good"]
    assert table.loc["train", "rows"] == "180" and table.loc["train", "bad"] == "60 (33.3%)"
    assert table.loc["test", "good"] == "40 (66.7%)"


def test_split_balance_of_a_regression_target_is_its_mean_and_spread(datamodule, tmp_path: Path):
    frame = pd.read_csv(tmp_path / "table.csv").assign(y=np.arange(300, dtype=float))
    frame.to_csv(tmp_path / "table.csv", index=False)
    table = run_summary.split_balance(datamodule(task="regression", positive_label=None))
    assert list(table.columns) == ["rows", "y mean", "y std"]
    assert table.loc["val", "rows"] == "60" and float(table.loc["val", "y mean"]) > 0


def test_missing_values_lists_only_columns_that_miss_some(datamodule):
    missing = run_summary.missing_values(datamodule())
    assert list(missing.index) == ["x"] and list(missing.columns) == ["train", "val", "test"]
    assert missing.loc["x"].sum() == 30
