"""``data.cv_folds=3``: one run, three fits; metrics.json holds their mean and spread, the run keeps
the best fold's model, and ``evaluate`` re-tests that model on its own fold (refusals: the unit tests)."""
from __future__ import annotations

import json
import statistics

import pytest
from omegaconf import OmegaConf

import factory
from factory.config import compose
from factory.training.recipe import evaluate

CV = ["experiment=diagnosis", "data.cv_folds=3", "trainer.max_epochs=2", "logger=csv",
      "baseline=[logistic_regression]", "plan.check=false"]  # the memory plan rebuilds each model: not under test


def _strict(name):
    raise ValueError(f"metrics.json holds {name}: not strict JSON")


def test_cross_validated_run(isolated_env):
    result = factory.train(compose("train", CV))
    run_dir = result.run_dir
    metrics = json.loads((run_dir / "metrics.json").read_text(), parse_constant=_strict)
    cv = metrics["cv"]
    folds = cv["per_fold"]
    assert cv["folds"] == len(folds) == 3
    for section, name in [("val", "val/loss"), ("test", "test/auroc")]:
        values = [fold[section][name] for fold in folds]
        assert len(set(values)) == 3  # three different models on three different folds
        assert metrics[section][name] == pytest.approx(statistics.fmean(values))
        assert cv["std"][section][name] == pytest.approx(statistics.stdev(values))
    lr = [fold["baseline"]["logistic_regression"]["auroc"] for fold in folds]  # fitted per fold too
    assert metrics["baseline"]["logistic_regression"]["auroc"] == pytest.approx(statistics.fmean(lr))
    assert result.monitored_value == metrics["val"]["val/loss"]  # sweeps optimize the cross-validated mean

    # The kept model: the fold with the best monitored val/loss (min), recorded as data.cv_fold.
    kept = cv["kept_fold"]
    assert folds[kept]["val"]["val/loss"] == min(fold["val"]["val/loss"] for fold in folds)
    assert result.best_checkpoint == run_dir / "checkpoints" / "best.ckpt" and result.best_checkpoint.is_file()
    assert OmegaConf.load(run_dir / "config.yaml").data.cv_fold == kept
    assert (run_dir / "csv" / "metrics.csv").is_file()
    for fold in range(3):  # each fold's history stays; only the kept model's checkpoint does
        assert (run_dir / "cv" / str(fold) / "csv" / "metrics.csv").is_file()
        assert not (run_dir / "cv" / str(fold) / "checkpoints").exists()
    rows = factory.runs().iloc[0]  # the catalog reads the means, not the cv section
    assert rows["test/auroc"] == metrics["test"]["test/auroc"] and not any(c.startswith("cv") for c in rows.index)

    # The registry records the kept model's own metrics, and the folds' mean and spread beside them.
    version = factory.registry.register(run_dir, registry=isolated_env / "registry")
    meta = version.metadata()
    assert meta["metrics"]["test/auroc"] == folds[kept]["test"]["test/auroc"]
    assert meta["cv"]["kept_fold"] == kept and meta["cv"]["mean"]["test/auroc"] == metrics["test"]["test/auroc"]
    assert meta["cv"]["std"]["test/auroc"] == cv["std"]["test"]["test/auroc"]

    # evaluate re-tests the kept model on its own fold: that fold's test metrics, not the mean.
    tested = evaluate(compose("evaluate", [f"ckpt_path={result.best_checkpoint}"]))
    assert tested["test/auroc"] == pytest.approx(folds[kept]["test"]["test/auroc"])
