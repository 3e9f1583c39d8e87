"""Run ids: each train() is a new run, a run id is a name, and a finished run is never overwritten."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

import factory
from factory.errors import ConfigError
from tests.conftest import REPO, script_env
from tests.integration.helpers import manifest, run_dirs
from tests.integration.test_launcher import JOB_ID, SLURM, fake_slurm, launcher_for, sweep_jobs  # noqa: F401

TINY = ["experiment=diagnosis", "logger=csv", "trainer.max_epochs=1"]


def snapshot(directory: Path) -> dict[str, str]:
    """Every file below ``directory`` by its checksum: a run left untouched byte for byte."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def train_cli(tmp_path: Path, run_id: str | None, *overrides: str) -> subprocess.CompletedProcess:
    """``FACTORY_RUN_ID=<run_id> python scripts/train.py <overrides>``, from ``tmp_path``."""
    env = {**script_env(tmp_path), **({"FACTORY_RUN_ID": run_id} if run_id is not None else {})}
    return subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *overrides], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)


def test_training_one_composed_config_twice_makes_two_runs(isolated_env):
    cfg = factory.compose("train", TINY)
    first = factory.train(cfg)
    before = snapshot(first.run_dir)
    second = factory.train(cfg)
    assert second.run_dir != first.run_dir
    assert snapshot(first.run_dir) == before
    assert [manifest(d)["status"] for d in (first.run_dir, second.run_dir)] == ["completed", "completed"]
    assert [manifest(d)["attempt"] for d in (first.run_dir, second.run_dir)] == [1, 1]
    assert factory.runs(isolated_env)["run_id"].is_unique


def test_a_fixed_run_directory_is_not_trained_twice(isolated_env):
    cfg = factory.compose("train", [*TINY, f"paths.run_dir={isolated_env}/mine"])
    first = factory.train(cfg)
    before = snapshot(first.run_dir)
    with pytest.raises(ConfigError, match="mine holds a run that completed, and a finished run is never overwritten"):
        factory.train(cfg)
    assert snapshot(first.run_dir) == before


@pytest.mark.parametrize("run_id", ["../../../elsewhere", "a/b", "..", "/tmp/abs", "x y"])
def test_a_run_id_is_a_name_not_a_path(tmp_path, monkeypatch, run_id):
    done = train_cli(tmp_path, run_id, *TINY)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: FACTORY_RUN_ID={run_id!r}: a run id is a name, not a path")
    assert list(tmp_path.iterdir()) == []  # nothing written, inside outputs/ or out of it
    monkeypatch.setenv("FACTORY_RUN_ID", run_id)
    with pytest.raises(ConfigError, match="^FACTORY_RUN_ID=.*a run id is a name, not a path"):  # notebooks too
        factory.train(factory.compose("train", TINY))


def test_factory_run_id_never_overwrites_a_finished_run(tmp_path):
    done = train_cli(tmp_path, "mine", *TINY)
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = run_dirs(tmp_path)
    assert run_dir == tmp_path / "outputs" / "diagnosis" / "mine"
    before = snapshot(run_dir)
    attempts = {  # the same command, resume=auto, another config in the same directory, the directory as a path
        "again": ("mine", []),
        "resume=auto": ("mine", ["resume=auto"]),
        "another config": ("mine", ["experiment=digits", "task_name=diagnosis"]),
        "paths.run_dir": (None, [f"paths.run_dir={run_dir}"]),
        "hydra.run.dir": (None, [f"hydra.run.dir={run_dir}", "resume=auto"]),
    }
    for name, (run_id, extra) in attempts.items():
        done = train_cli(tmp_path, run_id, *TINY, *extra)
        assert done.returncode == 2, name
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("error: ") and "diagnosis/mine holds a run that completed" in line, line
        hint = "unset FACTORY_RUN_ID for a new run, or set a new one" if run_id else "choose another run directory"
        assert line.endswith(hint), line
        assert snapshot(run_dir) == before, name  # not even Hydra's .hydra/ and log were written
    assert run_dirs(tmp_path) == [run_dir]


def test_every_task_of_a_slurm_trial_names_the_same_run_directory(fake_slurm):
    """Each SLURM task (rank) of a trial, and a requeued job, unpickles the submission and
    composes the trial's config itself: the trial's directory and id must come out the same."""
    from omegaconf import open_dict
    from submitit.core.utils import DelayedSubmission

    from factory.sweeps.callback import pin_sweep_dir

    launcher, cfg = launcher_for(SLURM)
    pin_sweep_dir(cfg)  # as the sweep journal callback does when the sweep starts
    launcher.launch(sweep_jobs(cfg, "seed=7"), initial_job_idx=0)
    sweep_dir = Path(cfg.hydra.sweep.dir)
    (pickled,) = sweep_dir.glob(f".submitit/{JOB_ID}/{JOB_ID}_submitted.pkl")
    resolved = set()
    for _task in range(2):
        delayed = DelayedSubmission.load(pickled)
        overrides, _, job_num = delayed.args[:3]
        job = delayed.function
        job_cfg = job.hydra_context.config_loader.load_sweep_config(job.config, list(overrides))
        with open_dict(job_cfg):
            job_cfg.hydra.job.num = job_num
        resolved.add(Path(job_cfg.hydra.sweep.dir) / job_cfg.hydra.sweep.subdir)
    (run_dir,) = resolved
    assert run_dir.parent == sweep_dir and run_dir.name == f"0_{sweep_dir.name}"
