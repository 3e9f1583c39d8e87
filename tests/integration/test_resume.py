"""resume=auto after kill -9 and SIGTERM: the resumed run ends exactly where an uninterrupted one does.

Each test trains a small config three ways: uninterrupted (the reference), and killed at a
fixed point (``tests/integration/fault_injection.KillAt``) then relaunched with the same
config until it completes. Final metrics must agree to 1e-6 and the metrics history
(``csv/metrics.csv``) must be the same file.
"""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from factory import compose
from factory.training.fault_tolerance import EXIT_INTERRUPTED
from factory.training.recipe import run
from tests.conftest import REPO, script_env
from tests.integration.helpers import manifest, run_dirs

KILL = "+callbacks.kill._target_=tests.integration.fault_injection.KillAt"
# diagnosis: 341 training rows, batch 64: 5 steps per epoch (drop_last), dropout and BatchNorm.
SINGLE = ["experiment=diagnosis", "baseline=null", "trainer.max_epochs=3", "model.net.hidden_dims=[16]", KILL,
          "resume=auto"]


def launch(root: Path, overrides: list[str], fault: str | None = None, timeout: int = 600):
    """``scripts/train.py`` in its own process group, as a scheduler would start it."""
    env = script_env(root)
    env["PYTHONPATH"] = str(REPO)  # the workers Lightning starts import KillAt too
    env.pop("SLURM_JOB_ID", None)
    env.pop("FAULT_INJECT", None)
    if fault:
        env["FAULT_INJECT"] = fault
    return subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *overrides], capture_output=True,
                          text=True, env=env, cwd=root, timeout=timeout, start_new_session=True)


def assert_same_metrics(resumed: dict, reference: dict) -> None:
    assert resumed.keys() == reference.keys()
    for section in reference:
        assert resumed[section] == pytest.approx(reference[section], abs=1e-6, rel=0), section


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def history(run_dir: Path) -> str:
    return (run_dir / "csv" / "metrics.csv").read_text()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted single-process run (in this process; its own FACTORY_ROOT)."""
    root = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACTORY_ROOT", str(root))
        mp.delenv("FAULT_INJECT", raising=False)
        return run(compose("train", [*SINGLE, "logger=csv"])).run_dir


def test_kill_9_then_sigterm_then_resume_auto_ends_as_uninterrupted(tmp_path, reference, monkeypatch, capsys):
    overrides = [*SINGLE, "logger=wandb"]
    # Attempt 1, a process killed by SIGKILL once epoch 0 is done: nothing is written on the way out.
    killed = launch(tmp_path, overrides, fault="SIGKILL@epoch0")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert "resume=auto: no unfinished run of this config" in killed.stderr
    (run_dir,) = run_dirs(tmp_path)
    assert manifest(run_dir)["status"] == "running"

    # Attempt 2, in this process: SIGTERM in the middle of epoch 1 saves last.ckpt and stops.
    monkeypatch.setenv("FAULT_INJECT", "SIGTERM@step7")
    with pytest.raises(SystemExit) as stopped:
        run(compose("train", overrides))
    assert stopped.value.code == EXIT_INTERRUPTED
    record = manifest(run_dir)
    assert record["status"] == "interrupted" and record["attempt"] == 2
    assert record["error"].startswith("Interrupted: SIGTERM at epoch 1, step 8")
    assert record["last_checkpoint"] == str(run_dir / "checkpoints" / "last.ckpt")
    assert f"resume=auto: continuing {run_dir} (attempt 2) from {run_dir}/checkpoints/last.ckpt" in \
        capsys.readouterr().err

    # Attempt 3 runs to the end, in the same directory.
    monkeypatch.delenv("FAULT_INJECT")
    result = run(compose("train", overrides))
    assert result.run_dir == run_dir and run_dirs(tmp_path) == [run_dir]
    record = manifest(run_dir)
    assert record["status"] == "completed" and record["attempt"] == 3
    assert [r["previous_status"] for r in record["resumes"]] == ["running", "interrupted"]
    assert record["resumed_from"] == str(run_dir / "checkpoints" / "last.ckpt")

    assert_same_metrics(metrics_of(run_dir), metrics_of(reference))
    assert history(run_dir) == history(reference)  # the epochs before each kill included, none twice
    # Every attempt logged to the same wandb run.
    offline = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 3
    assert len({p.name.split("-", 3)[-1] for p in offline}) == 1


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "deepspeed_zero2"])
def test_two_ranks_resume_exactly_after_kill_9_and_sigterm(tmp_path, strategy):
    overrides = ["experiment=diagnosis", "logger=csv", "baseline=null", "trainer.max_epochs=3",
                 "trainer.accelerator=cpu", "trainer.devices=2", f"strategy={strategy}",
                 "model.net.hidden_dims=[16]", KILL, "resume=auto"]
    ref_root, root = tmp_path / "reference", tmp_path / "resumed"
    ref_root.mkdir(), root.mkdir()
    done = launch(ref_root, overrides)
    assert done.returncode == 0, done.stderr[-3000:]

    killed = launch(root, overrides, fault="SIGKILL@epoch0")  # every rank, at once
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    # SIGTERM to rank 0 alone (as Kubernetes does): it passes it on; both ranks save and stop together.
    stopped = launch(root, overrides, fault="SIGTERM@step4")
    assert stopped.returncode == EXIT_INTERRUPTED, stopped.stderr[-3000:]
    assert "SIGTERM at epoch 1, step 5" in stopped.stdout + stopped.stderr
    finished = launch(root, overrides)
    assert finished.returncode == 0, finished.stderr[-3000:]

    (run_dir,), (ref_dir,) = run_dirs(root), run_dirs(ref_root)
    record = manifest(run_dir)
    assert record["status"] == "completed" and record["attempt"] == 3
    assert record["strategy"]["world_size"] == 2
    assert [r["previous_status"] for r in record["resumes"]] == ["running", "interrupted"]
    assert record["checkpoint_format"] == ("sharded" if strategy.startswith("deepspeed") else "file")
    assert_same_metrics(metrics_of(run_dir), metrics_of(ref_dir))
    assert history(run_dir) == history(ref_dir)
    assert not [p for p in os.listdir(root / "outputs" / "diagnosis") if p != run_dir.name]


# Batch 16: 23 steps per epoch; Lightning writes train/loss on steps 9, 19, 29, 39 (log_every_n_steps=10),
# and every_n_train_steps=7 saves last.ckpt at steps 7, 14, 21, ... (off that grid).
OFF_GRID = [*SINGLE, "logger=csv", "trainer.max_epochs=2", "data.batch_size=16",
            "callbacks.preemption.every_n_train_steps=7"]


def test_history_is_the_same_after_resumes_from_steps_off_the_logging_grid(tmp_path, monkeypatch):
    reference_root, root = tmp_path / "reference", tmp_path / "resumed"
    reference_root.mkdir(), root.mkdir()
    monkeypatch.setenv("FACTORY_ROOT", str(reference_root))
    reference_dir = run(compose("train", OFF_GRID)).run_dir
    reference_history = history(reference_dir)
    rows = csv.DictReader(io.StringIO(reference_history))
    assert [r["step"] for r in rows if r["train/loss"]] == ["9", "19", "29", "39"]

    # kill -9 at step 17: resumes from the save at step 14, before the step 19 row.
    killed = launch(root, OFF_GRID, fault="SIGKILL@step17")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    # SIGTERM as step 29 starts: saves after it, when the step 29 row is due (the stop must not skip it).
    monkeypatch.setenv("FACTORY_ROOT", str(root))
    monkeypatch.setenv("FAULT_INJECT", "SIGTERM@step29")
    with pytest.raises(SystemExit):
        run(compose("train", OFF_GRID))
    (run_dir,) = run_dirs(root)
    assert manifest(run_dir)["error"].startswith("Interrupted: SIGTERM at epoch 1, step 30;")
    monkeypatch.delenv("FAULT_INJECT")
    assert run(compose("train", OFF_GRID)).run_dir == run_dir
    assert [r["checkpoint"] is not None for r in manifest(run_dir)["resumes"]] == [True, True]

    assert history(run_dir) == reference_history
    assert_same_metrics(metrics_of(run_dir), metrics_of(reference_dir))


@pytest.mark.slow
def test_two_ranks_resume_after_ctrl_c_off_the_logging_grid(tmp_path):
    # ddp, batch 16: 12 steps an epoch; Ctrl-C (SIGINT to every rank) saves at step 14, between rows 9 and 19.
    overrides = ["experiment=diagnosis", "logger=csv", "baseline=null", "trainer.max_epochs=3", "data.batch_size=16",
                 "trainer.accelerator=cpu", "trainer.devices=2", "strategy=ddp", "model.net.hidden_dims=[16]", KILL,
                 "resume=auto"]
    ref_root, root = tmp_path / "reference", tmp_path / "resumed"
    ref_root.mkdir(), root.mkdir()
    done = launch(ref_root, overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    stopped = launch(root, overrides, fault="SIGINT@step13")
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert "interrupted: SIGINT at epoch 1, step 14; saved" in stopped.stderr
    finished = launch(root, overrides)
    assert finished.returncode == 0, finished.stderr[-3000:]

    (run_dir,), (ref_dir,) = run_dirs(root), run_dirs(ref_root)
    assert manifest(run_dir)["status"] == "completed" and manifest(run_dir)["attempt"] == 2
    assert_same_metrics(metrics_of(run_dir), metrics_of(ref_dir))
    assert history(run_dir) == history(ref_dir)
    assert "\n1,,19," in history(ref_dir)  # a train/loss row between the save and the next epoch


def test_sigterm_inside_a_gradient_accumulation_window_stops_after_its_step(tmp_path, monkeypatch):
    # 5 batches per epoch, 2 per optimizer step: steps end at batches 2, 4, 5. SIGTERM as
    # batch 3 starts (step 1) must not save batch 3's gradients half-accumulated.
    monkeypatch.setenv("FAULT_INJECT", "SIGTERM@step1")
    with pytest.raises(SystemExit):
        run(compose("train", [*SINGLE, "logger=csv", "trainer.accumulate_grad_batches=2"]))
    (run_dir,) = run_dirs(tmp_path)
    assert manifest(run_dir)["error"].startswith("Interrupted: SIGTERM at epoch 0, step 2;")
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 2
    assert checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["processed"] == 4


def test_every_n_train_steps_keeps_last_ckpt_recent_within_an_epoch(tmp_path):
    run(compose("train", [*SINGLE, "logger=csv", "trainer.max_epochs=1", "callbacks.model_checkpoint.save_last=false",
                          "callbacks.preemption.every_n_train_steps=2"]))
    (run_dir,) = run_dirs(tmp_path)
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4  # of 5
