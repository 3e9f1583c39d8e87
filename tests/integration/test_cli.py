"""The scripts as users run them: train, evaluate, DDP, concurrent launches."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, script_env
from tests.integration.helpers import manifest, run_dirs, run_script

DIAGNOSIS = ["experiment=diagnosis", "logger=csv", "trainer.max_epochs=3"]


def test_train_then_evaluate_gives_the_same_test_metrics(tmp_path):
    trained = run_script(tmp_path, "train.py", *DIAGNOSIS)
    assert trained.returncode == 0, trained.stderr[-2000:]
    (run_dir,) = run_dirs(tmp_path)
    assert "diagnosis: completed" in trained.stdout and str(run_dir) in trained.stdout
    record = manifest(run_dir)
    train_metrics = json.loads((run_dir / "metrics.json").read_text())["test"]

    evaluated = run_script(tmp_path, "evaluate.py", f"ckpt_path={record['best_checkpoint']}", "data=breast_cancer")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    (eval_dir,) = [d for d in run_dirs(tmp_path) if d.parent.name == "evaluate"]
    eval_metrics = json.loads((eval_dir / "metrics.json").read_text())["test"]
    assert eval_metrics.keys() == train_metrics.keys()
    for name, value in train_metrics.items():
        assert eval_metrics[name] == pytest.approx(value, abs=1e-6), name
    assert manifest(eval_dir)["data"]["fingerprint"] == record["data"]["fingerprint"]


def test_evaluate_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    result = run_script(tmp_path, "evaluate.py", "ckpt_path=notes.ckpt")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ckpt_path: notes.ckpt is not a readable checkpoint")


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_shares_one_run_directory(tmp_path):
    result = run_script(tmp_path, "train.py", *DIAGNOSIS, "strategy=ddp", "trainer.devices=2",
                        "trainer.accelerator=cpu")
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path)
    record = manifest(run_dir)
    assert record["status"] == "completed"
    assert record["strategy"] == {"name": "ddp", "world_size": 2}
    assert json.loads((run_dir / "metrics.json").read_text())["test"]["test/accuracy"] > 0.8


def test_runs_started_together_get_their_own_directories(tmp_path):
    command = [sys.executable, str(REPO / "scripts/train.py"), "trainer=debug", "logger=csv",
               "data.source.rows=1000", "baseline=null"]
    processes = [subprocess.Popen(command, cwd=tmp_path, env=script_env(tmp_path),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read()[-2000:]
    dirs = run_dirs(tmp_path)
    assert len(dirs) == 2 and dirs[0] != dirs[1]
