"""resume=auto: which run directory a relaunch continues, what it refuses, what it records.

Run directories here are real (config.yaml written from a composed config, run.json from
a RunRecord), only nothing trains: the choice is made before training starts.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from factory import compose
from factory.rundir import manifest
from factory.rundir import resume
from factory.errors import ConfigError

TASK = "train"


def make_run(root: Path, name: str, status: str, started: str, overrides: tuple[str, ...] = ()) -> Path:
    """A run directory as training leaves it: resolved config.yaml and run.json."""
    cfg = compose("train", ["resume=auto", *overrides])
    run_dir = root / "outputs" / TASK / name
    with open_dict(cfg):
        cfg.paths.run_dir = str(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / manifest.CONFIG).write_text(OmegaConf.to_yaml(cfg, resolve=True))
    record = manifest.RunRecord.begin(run_dir, TASK, cfg.seed, [])
    record.status, record.started_at = status, f"2026-01-01T{started}+00:00"
    record.save()
    return run_dir


def chosen(*overrides: str) -> str:
    return Path(compose("train", ["resume=auto", *overrides]).paths.run_dir).name


def test_continues_the_newest_unfinished_run_of_the_same_config(isolated_env):
    make_run(isolated_env, "older", "failed", "00:00:00")
    make_run(isolated_env, "interrupted", "interrupted", "01:00:00")
    make_run(isolated_env, "other-seed", "running", "02:00:00", ("seed=7",))
    assert chosen() == "interrupted"
    assert chosen("seed=7") == "other-seed"
    # The choice is made once per config and travels with its copies (pin_run_dir copies it).
    cfg = compose("train", ["resume=auto"])
    make_run(isolated_env, "newer", "running", "03:00:00")
    assert copy.deepcopy(cfg).paths.run_dir == cfg.paths.run_dir == str(isolated_env / "outputs" / TASK / "interrupted")
    assert chosen() == "newer"


def test_a_newer_completed_run_of_the_config_means_a_new_run(isolated_env):
    make_run(isolated_env, "interrupted", "interrupted", "01:00:00")
    make_run(isolated_env, "done", "completed", "02:00:00")
    name = chosen()
    assert name not in ("interrupted", "done")
    assert resume._notes[name] == "resume=auto: the newest run of this config, done, completed: starting a new run"


def test_no_unfinished_run_means_a_new_run_and_says_so(isolated_env, capsys):
    make_run(isolated_env, "other-seed", "interrupted", "01:00:00", ("seed=7",))
    cfg = compose("train", ["resume=auto"])
    run_dir = Path(cfg.paths.run_dir)
    assert run_dir.name != "other-seed"
    attempt = resume.begin(cfg, run_dir, is_zero=True)
    attempt.close()
    assert attempt.record.attempt == 1 and attempt.checkpoint is None
    assert capsys.readouterr().err.strip() == (
        f"resume=auto: no unfinished run of this config under {isolated_env / 'outputs' / TASK}: starting a new run")


def test_a_run_held_by_a_live_process_is_not_joined(isolated_env):
    run_dir = make_run(isolated_env, "alive", "running", "01:00:00")
    attempt = resume.begin(compose("train", []), run_dir, is_zero=True)  # holds run_dir, as a live run does
    try:
        assert resume.held(run_dir)
        name = chosen()
        assert name != "alive" and "alive is still running in another process" in resume._notes[name]
    finally:
        attempt.close()
    assert not resume.held(run_dir) and chosen() == "alive"


def test_run_id_from_the_environment_or_the_slurm_job(isolated_env, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert chosen() == "slurm_4242"  # a requeued job keeps its id, so its directory
    assert not Path(compose("train", []).paths.run_dir).name.startswith("slurm_")  # only with resume=auto
    monkeypatch.setenv("FACTORY_RUN_ID", "mine")
    assert chosen() == "mine"


def test_begin_continues_the_run_and_records_the_attempt(isolated_env):
    run_dir = make_run(isolated_env, "r", "interrupted", "01:00:00")
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"x")
    cfg = compose("train", ["resume=auto"])
    assert Path(cfg.paths.run_dir) == run_dir
    attempt = resume.begin(cfg, run_dir, is_zero=True)
    try:
        record = attempt.record
        assert attempt.checkpoint == str(run_dir / "checkpoints" / "last.ckpt")
        assert record.status == "running" and record.attempt == 2 and record.error is None
        assert record.resumes == [{"at": record.resumes[0]["at"], "checkpoint": attempt.checkpoint,
                                   "previous_status": "interrupted", "previous_error": None}]
        assert record.started_at == "2026-01-01T01:00:00+00:00"  # the run's start, not this attempt's
        with pytest.raises(ConfigError, match="in use by a running process"):
            resume.begin(cfg, run_dir, is_zero=True)  # a second launch while this one lives
    finally:
        attempt.close()


def test_a_fixed_directory_with_a_finished_or_other_run_is_refused(isolated_env, monkeypatch):
    done = make_run(isolated_env, "done", "completed", "01:00:00")
    other = make_run(isolated_env, "other", "interrupted", "01:00:00", ("seed=7",))
    monkeypatch.setenv("FACTORY_RUN_ID", "done")
    with pytest.raises(ConfigError, match=f"resume=auto: {done} holds a run that completed"):
        resume.begin(compose("train", ["resume=auto"]), done, is_zero=True)
    monkeypatch.setenv("FACTORY_RUN_ID", "other")
    with pytest.raises(ConfigError, match=r"another config \(differs at seed, data.source.seed, data.split_seed\)"):
        resume.begin(compose("train", ["resume=auto"]), other, is_zero=True)
    assert manifest.load_record(other).status == "interrupted"  # nothing written on refusal


def test_resume_takes_auto_or_nothing(isolated_env):
    assert compose("train", ["resume=false"]).resume is False
    with pytest.raises(ConfigError, match="resume: 'yes' is not one of: null, False, auto"):
        compose("train", ["resume=yes"])


def test_newest_checkpoint_is_last_or_a_newer_hpc_checkpoint(tmp_path):
    assert resume.newest_checkpoint(tmp_path) is None
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    last.write_bytes(b"x")
    hpc = tmp_path / "hpc_ckpt_1.ckpt"  # Lightning's SLURM auto-requeue save
    hpc.write_bytes(b"x")
    os.utime(last, (1000, 1000)), os.utime(hpc, (2000, 2000))
    assert resume.newest_checkpoint(tmp_path) == str(hpc)
    # A DeepSpeed checkpoint is a directory; its files say when it was written.
    last.unlink()
    (last / "checkpoint").mkdir(parents=True)
    (last / "checkpoint" / "mp_rank_00_model_states.pt").write_bytes(b"x")
    os.utime(last, (500, 500)), os.utime(last / "checkpoint", (500, 500))
    assert resume.newest_checkpoint(tmp_path) == str(last)


def test_history_of_earlier_attempts_is_kept_up_to_the_resumed_step(tmp_path):
    (tmp_path / "csv").mkdir()
    (tmp_path / resume.STASH).write_text("epoch,step,val/loss\n0,4,0.5\n1,9,0.4\n1,12,0.39\n")
    (tmp_path / resume.HISTORY).write_text("epoch,step,train/loss\n1,11,0.3\n2,14,0.2\n")
    resume.finish_history(tmp_path)
    assert (tmp_path / resume.HISTORY).read_text().splitlines() == [
        "epoch,step,train/loss,val/loss", "0,4,,0.5", "1,9,,0.4", "1,11,0.3,", "2,14,0.2,"]
    assert not (tmp_path / resume.STASH).exists()
    resume.finish_history(tmp_path)  # nothing stashed: nothing changes
    assert len((tmp_path / resume.HISTORY).read_text().splitlines()) == 5


def test_every_attempt_of_a_run_logs_to_the_same_wandb_run(tmp_path):
    wandb = OmegaConf.create({"_target_": "pytorch_lightning.loggers.WandbLogger"})
    first = resume.tracker_identity(wandb, tmp_path / "a" / "0")
    assert first == resume.tracker_identity(wandb, tmp_path / "a" / "0") and first["resume"] == "allow"
    assert first["id"].startswith("0-")
    assert first["id"] != resume.tracker_identity(wandb, tmp_path / "b" / "0")["id"]  # trial 0 of another sweep
    assert resume.tracker_identity(OmegaConf.create({"_target_": "pytorch_lightning.loggers.CSVLogger"}),
                                   tmp_path) == {}
