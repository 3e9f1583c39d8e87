"""A completed run writes its reference profile, and the profile travels with the registered version."""
from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from factory.monitoring.drift import DriftMonitor
from factory.monitoring.profile import load_profile
from factory.rundir.layout import PROFILE, PROFILE_SAMPLE
from tests.conftest import REPO, script_env
from tests.integration.helpers import FAST_FRAUD, manifest, trained_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return trained_run(tmp_path_factory.mktemp("profile-run"), FAST_FRAUD)


def test_the_run_directory_holds_the_profile(run_dir):
    import factory

    assert manifest(run_dir)["profile"] == PROFILE
    assert factory.runs(run_dir.parents[2]).loc[0, "profile"] == str(run_dir / PROFILE)
    profile = load_profile(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert profile.meta["task"] == "binary" and profile.meta["split"] == "val"
    assert profile.meta["run_id"] == run_dir.name and profile.meta["val_metrics"] == metrics["val"]
    assert profile.meta["data_fingerprint"] == manifest(run_dir)["data"]["fingerprint"]
    assert profile.rows == manifest(run_dir)["data"]["rows"]["val"] == profile.sample.num_rows
    assert set(profile.features) == set(profile.meta["kinds"]) and len(profile.features) == 10
    assert len(profile.features["merchant_id"]["known"]) > len(profile.features["merchant_id"]["counts"])
    scores = profile.sample.column("score").to_numpy()
    assert 0 <= scores.min() and scores.max() <= 1 and scores.std() > 0


def test_the_profile_is_registered_with_the_run_and_checked(run_dir, tmp_path):
    registry = tmp_path / "registry"
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "registry.py"), "register", str(run_dir),
                          "--registry", str(registry)], capture_output=True, text=True, cwd=tmp_path,
                         env=script_env(tmp_path), timeout=300)
    assert out.returncode == 0, out.stderr
    version = registry / "fraud_detection" / "v1"
    assert (version / PROFILE).read_bytes() == (run_dir / PROFILE).read_bytes()
    assert (version / PROFILE_SAMPLE).is_file()
    recorded = json.loads((version / "meta.json").read_text())["profile"]["files"]
    assert set(recorded) == {PROFILE, PROFILE_SAMPLE}
    profile = load_profile("fraud_detection@latest", registry=registry)
    # The reference against itself: nothing drifted.
    monitor = DriftMonitor(profile)
    monitor.update(profile.sample)
    assert monitor.result()["drifted"] == [] and not monitor.result()["score"]["drifted"]


def test_a_run_that_did_not_complete_or_was_cross_validated_is_skipped(run_dir, caplog):
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from factory.monitoring.profile import after_run

    record = SimpleNamespace(best_checkpoint=manifest(run_dir)["best_checkpoint"], run_id="x")
    cases = {"failed": ("failed", {}), "cross-validated": ("completed", {"cv_folds": 3})}
    for why, (status, data) in cases.items():
        run = SimpleNamespace(status=status, cfg=OmegaConf.create({"data": data}), run_dir=run_dir, record=record)
        with caplog.at_level(logging.INFO, logger="factory.monitoring.profile"):
            after_run(run)
        assert why in caplog.text or status in caplog.text


def _regression_csv(root):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x1": rng.normal(size=300), "region": rng.choice(["north", "south"], 300)})
    frame["y"] = 2 * frame.x1 + (frame.region == "north") + rng.normal(scale=0.3, size=300)
    frame.to_csv(root / "table.csv", index=False)
    return root / "table.csv"


@pytest.mark.parametrize("kind", ["digits", "regression"])
def test_images_and_regression_are_profiled(kind, tmp_path):
    """Digits: 64 pixel columns profiled as numerics; regression: the score is the predicted value."""
    overrides = {"digits": ["experiment=digits", "logger=csv", "trainer.max_epochs=1", "baseline=null"],
                 "regression": ["data=files", f"data.source.path={_regression_csv(tmp_path)}", "data.source.target=y",
                                "data.source.task=regression", "task_name=regression", "logger=csv",
                                "trainer.max_epochs=1", "baseline=null"]}[kind]
    profile = load_profile(trained_run(tmp_path, overrides))
    if kind == "digits":
        assert len(profile.features) == 64 and profile.meta["task"] == "multiclass"
        assert profile.meta["image_shape"] and len(profile.meta["class_labels"]) == 10
    else:
        assert profile.meta["task"] == "regression" and profile.features["region"]["kind"] == "categorical"
        assert profile.score["std"] > 0
