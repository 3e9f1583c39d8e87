"""The notebook API on real small runs: compose, train, runs(), load_run, predictions, plots."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import accuracy_score, average_precision_score

import factory
from factory.analysis import plots
from factory.errors import FactoryError
from factory.analysis.notebook import RUN_COLUMNS
from tests.integration.helpers import FAST_FRAUD

DIGITS = ["experiment=digits", "logger=csv", "trainer.max_epochs=1"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("notebook")


@pytest.fixture(scope="module")
def fraud(root):
    """One small fraud run (2 epochs, 3,000 rows) trained through ``factory.train``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACTORY_ROOT", str(root))
        return factory.train(factory.compose("train", FAST_FRAUD))


@pytest.fixture(scope="module")
def digits(root, fraud):  # after fraud: runs() sorts it first
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACTORY_ROOT", str(root))
        return factory.train(factory.compose("train", DIGITS))


def test_import_factory_stays_light():
    import subprocess
    import sys

    code = ("import sys, factory; factory.runs; factory.compose; "
            "print(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'pytorch_lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_compose_twice_in_one_process_gives_fresh_configs():
    first = factory.compose("train", ["experiment=digits", "trainer.max_epochs=3"])
    second = factory.compose("train", ["experiment=fraud_detection"])
    assert (first.task_name, first.trainer.max_epochs) == ("digits", 3)
    assert second.task_name == "fraud_detection" and second.trainer.max_epochs != 3
    assert "hydra" not in second


def test_runs_is_empty_frame_without_outputs(tmp_path):
    frame = factory.runs(tmp_path)
    assert frame.empty and list(frame.columns) == RUN_COLUMNS


def test_runs_lists_newest_first_with_metrics(root, fraud, digits):
    frame = factory.runs(root)
    assert frame["run_id"].tolist() == [digits.run_dir.name, fraud.run_dir.name]
    assert list(frame.columns[:len(RUN_COLUMNS)]) == RUN_COLUMNS
    row = frame.iloc[1]
    assert (row.experiment, row.status, row.data_source, row.rows, row.strategy) == (
        "fraud_detection", "completed", "fraud", 3000, "single_device")
    assert len(row.data_fingerprint) == 12 and row.duration_s > 0
    assert pd.api.types.is_datetime64_any_dtype(frame["started_at"])
    assert row["test/pr_auc"] == fraud.metrics["test"]["test/pr_auc"]
    for baseline in ("logistic_regression", "hist_gradient_boosting"):  # the fraud preset asks for both
        assert row[f"baseline/{baseline}/pr_auc"] == fraud.metrics["baseline"][baseline]["pr_auc"]
    assert np.isnan(frame.iloc[0]["baseline/logistic_regression/pr_auc"])  # digits has no baseline
    # FACTORY_ROOT is the default root, as in conf/paths.
    assert factory.runs(None).empty


def test_load_run_by_path_id_and_suffix(root, fraud, monkeypatch):
    monkeypatch.setenv("FACTORY_ROOT", str(root))
    run_id = fraud.run_dir.name
    for key in (fraud.run_dir, run_id, run_id.rsplit("_", 1)[1]):
        loaded = factory.load_run(key)
        assert loaded.run_dir == fraud.run_dir and loaded.run_id == run_id
    assert loaded.manifest.status == "completed"
    assert loaded.config.task_name == "fraud_detection" and loaded.config.trainer.max_epochs == 2
    assert loaded.metrics == fraud.metrics


def test_load_run_unknown_id_is_one_line_factory_error(root):
    with pytest.raises(FactoryError, match="no run 'nope'") as error:
        factory.load_run("nope", root=root)
    assert "\n" not in str(error.value)


def test_history_has_one_row_per_epoch(root, fraud):
    loaded = factory.load_run(fraud.run_dir)
    history = loaded.history
    assert history["epoch"].tolist() == [0, 1]
    assert {"train/loss_epoch", "val/loss", "val/pr_auc"} <= set(history.columns)
    assert not any(c.startswith("test/") for c in history.columns)
    assert history[["train/loss_epoch", "val/pr_auc"]].notna().all().all()
    assert len(loaded.steps) > len(history)
    assert isinstance(plots.learning_curves(history), Figure)


def test_binary_predictions_reproduce_the_test_metric(root, fraud):
    loaded = factory.load_run(fraud.run_dir)
    preds = loaded.predictions("test")
    assert len(preds) == loaded.manifest.data["rows"]["test"]
    assert {"amount", "channel", "is_fraud", "target", "label", "prediction", "score"} <= set(preds.columns)
    assert (preds["target"] == preds["is_fraud"].astype(int)).all()
    assert preds["score"].between(0, 1).all()
    assert average_precision_score(preds["target"], preds["score"]) == pytest.approx(
        fraud.metrics["test"]["test/pr_auc"], abs=1e-4)
    assert len(loaded.predictions("val")) == loaded.manifest.data["rows"]["val"]


def test_metrics_by_segment_on_channel(root, fraud):
    preds = factory.load_run(fraud.run_dir).predictions("test")
    table = plots.segment_metrics(preds, "channel", metric="accuracy")
    assert table["rows"].sum() == len(preds) and set(table["segment"]) == set(preds["channel"])
    fig = plots.metrics_by_segment(preds, "channel", metric="pr_auc")
    assert fig.axes[0].get_xlabel() == "channel" and len(fig.axes[0].patches) == len(table)
    for figure in (plots.roc_curve(preds.target, preds.score), plots.pr_curve(preds.target, preds.score),
                   plots.calibration_curve(preds.target, preds.score),
                   plots.score_distribution(preds.target, preds.score),
                   plots.confusion_matrix(preds.target, preds.prediction, labels=["legit", "fraud"])):
        assert isinstance(figure, Figure)


def test_multiclass_predictions_have_class_probabilities(root, digits):
    loaded = factory.load_run(digits.run_dir)
    preds = loaded.predictions("test")
    probs = [f"prob_{d}" for d in range(10)]
    assert len(preds) == loaded.manifest.data["rows"]["test"]
    assert {"pixel_0", "pixel_63", "digit", "target", "label", "prediction", "score", *probs} <= set(preds.columns)
    assert np.allclose(preds[probs].sum(axis=1), 1, atol=1e-5)
    assert (preds["prediction"] == preds[probs].to_numpy().argmax(axis=1)).all()
    assert accuracy_score(preds["target"], preds["prediction"]) == pytest.approx(
        digits.metrics["test"]["test/accuracy"], abs=1e-4)
    model = loaded.model()
    assert model is loaded.model() and not model.training  # loaded once, in eval mode
