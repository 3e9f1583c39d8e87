"""Ctrl-C (SIGINT) during training: checkpoint, ``interrupted``, exit 130, one line; resume=auto continues."""
from __future__ import annotations

import pytest

from factory import compose
from factory.training.recipe import run
from tests.integration.helpers import manifest, run_dirs
from tests.integration.test_resume import SINGLE, history, launch, metrics_of

OVERRIDES = [*SINGLE, "logger=csv"]  # diagnosis: 5 steps an epoch, 3 epochs


def test_ctrl_c_checkpoints_and_stops_like_sigterm_then_resume_auto_continues(tmp_path, monkeypatch):
    reference_root, root = tmp_path / "reference", tmp_path / "ctrl_c"
    reference_root.mkdir(), root.mkdir()
    monkeypatch.setenv("FACTORY_ROOT", str(reference_root))
    reference = run(compose("train", OVERRIDES)).run_dir

    # SIGINT to the whole process group as step 7 starts, as a terminal's Ctrl-C.
    stopped = launch(root, OVERRIDES, fault="SIGINT@step7")
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    (run_dir,) = run_dirs(root)
    last = run_dir / "checkpoints" / "last.ckpt"
    said = [line for line in stopped.stderr.splitlines() if "SIGINT" in line or "KeyboardInterrupt" in line]
    assert said == [f"interrupted: SIGINT at epoch 1, step 8; saved {last} "
                    "(rerun the same command with resume=auto to continue)"], stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr and "SystemExit" not in stopped.stderr
    record = manifest(run_dir)
    assert record["status"] == "interrupted"
    assert record["error"].startswith("Interrupted: SIGINT at epoch 1, step 8;")
    assert record["last_checkpoint"] == str(last) and last.is_file()
    assert record["best_checkpoint"] == str(run_dir / "checkpoints" / "best.ckpt")

    finished = launch(root, OVERRIDES)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert run_dirs(root) == [run_dir]
    record = manifest(run_dir)
    assert record["status"] == "completed" and record["attempt"] == 2
    assert record["resumes"][0]["previous_status"] == "interrupted"
    assert record["resumed_from"] == str(last)
    assert metrics_of(run_dir)["test"] == pytest.approx(metrics_of(reference)["test"], abs=1e-6, rel=0)
    assert history(run_dir) == history(reference)
