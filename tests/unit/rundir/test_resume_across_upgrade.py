"""resume=auto continues a run written before a component moved or after-run hooks changed:
neither decides what the run computes. A changed value that does is still refused."""
from __future__ import annotations

import pytest
import yaml

from factory import compose
from factory.errors import ConfigError
from factory.rundir import guard, manifest, resume
from tests.unit.rundir.test_resume import chosen, make_run


def _as_written_before(run_dir, **changes):
    """Rewrite the run's config.yaml as the earlier layout wrote it."""
    path = run_dir / manifest.CONFIG
    config = yaml.safe_load(path.read_text())
    config.pop("after_run", None)  # no hooks key before issue 10
    config["callbacks"]["preemption"]["_target_"] = "factory.fault_tolerance.PreemptionCheckpoint"
    config["callbacks"]["model_checkpoint"]["_target_"] = "pytorch_lightning.callbacks.ModelCheckpoint"
    config.update(changes)
    path.write_text(yaml.safe_dump(config))


def test_a_run_written_before_the_layout_continues(isolated_env):
    run_dir = make_run(isolated_env, "old", "interrupted", "01:00:00")
    _as_written_before(run_dir)
    assert guard.differences(compose("train", ["resume=auto"]), run_dir) == []
    assert chosen() == "old"
    assert chosen("after_run=[factory.tracking.loggers.after_run]") == "old"  # hooks differ: still the same run


def test_a_real_difference_is_still_refused(isolated_env, monkeypatch):
    run_dir = make_run(isolated_env, "old", "interrupted", "01:00:00")
    _as_written_before(run_dir, seed=7)
    monkeypatch.setenv("FACTORY_RUN_ID", "old")
    with pytest.raises(ConfigError, match=r"another config \(differs at seed\)"):
        resume.begin(compose("train", ["resume=auto"]), run_dir, is_zero=True)
