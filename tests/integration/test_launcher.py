"""Hydra's submitit launcher: what ``launcher=slurm`` would submit, and a sweep run by ``launcher=local``.

There is no cluster here. The SLURM tests go through Hydra's own plugin code
(``Plugins.instantiate_launcher``, then ``SlurmLauncher.launch``) and submitit's real
executor, which validates the parameters and writes the sbatch script; only ``srun`` and
``sbatch`` are stand-ins on PATH, and no job runs.
"""
from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

import pytest

from factory.config import CONFIG_DIR, compose
from tests.integration.helpers import manifest, run_script

SLURM = ["launcher=slurm", "strategy=deepspeed_zero3", "trainer.devices=8", "trainer.num_nodes=2",
         "hydra.launcher.partition=gpu"]
JOB_ID = "4242"


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put ``srun`` and ``sbatch`` stand-ins on PATH; returns where sbatch copies the script it gets."""
    import submitit.slurm.slurm

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = tmp_path / "submitted.sbatch"
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit only checks that it exists
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\ncp "$1" {shlex.quote(str(script))}\necho "Submitted batch job {JOB_ID}"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    # Nothing runs, so there is no result to wait for (and no sacct to poll).
    monkeypatch.setattr(submitit.slurm.slurm.SlurmJob, "results", lambda self: [None])
    return script


def _task(cfg):
    raise AssertionError("no job runs in these tests")


def launcher_for(overrides: list[str]):
    """The launcher Hydra's multirun would build for ``train`` with ``overrides``, and the config."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra._internal.callbacks import Callbacks
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3", job_name="train"):
        cfg = hydra_compose("train", overrides=overrides, return_hydra_config=True)
        context = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=Callbacks(cfg))
        launcher = Plugins.instance().instantiate_launcher(hydra_context=context, task_function=_task, config=cfg)
    return launcher, cfg


def sweep_jobs(cfg, *choices: str) -> list[list[str]]:
    """Per-job overrides as Hydra's basic sweeper makes them: the command line's, plus the swept value."""
    return [[*cfg.hydra.overrides.task, choice] for choice in choices]


def sbatch_flags(script: str) -> dict[str, str]:
    """``#SBATCH --key=value`` lines as {key: value} (a bare ``--flag`` maps to "")."""
    flags = (line.removeprefix("#SBATCH --") for line in script.splitlines() if line.startswith("#SBATCH --"))
    return {key: value for key, _, value in (flag.partition("=") for flag in flags)}


@pytest.mark.parametrize("overrides, expected", [
    (SLURM, {"nodes": 2, "tasks_per_node": 8, "gpus_per_node": 8, "partition": "gpu"}),
    (["launcher=slurm"], {"nodes": 1, "tasks_per_node": 1, "gpus_per_node": 1, "partition": None}),
], ids=["2x8", "defaults"])
def test_slurm_launcher_takes_nodes_and_tasks_from_the_trainer(isolated_env, overrides, expected):
    launcher, cfg = launcher_for(overrides)
    params = launcher.params
    assert type(launcher).__name__ == "SlurmLauncher"
    assert {key: params[key] for key in expected} == expected
    assert {key: params[key] for key in ("timeout_min", "signal_delay_s", "max_num_timeout")} == {
        "timeout_min": 240, "signal_delay_s": 120, "max_num_timeout": 0}
    # Lightning's auto-requeue signal replaces submitit's USR2; the job may be requeued.
    assert params["additional_parameters"] == {"signal": "USR1@120", "requeue": True}
    sweep_dir = cfg.hydra.sweep.dir
    assert sweep_dir.startswith(f"{isolated_env}/outputs/train/multirun/")
    assert params["submitit_folder"] == f"{sweep_dir}/.submitit/%j"
    assert params["name"] == "train"


def test_slurm_sweep_submits_the_sbatch_script_lightning_needs(fake_slurm):
    launcher, cfg = launcher_for(SLURM)
    launcher.launch(sweep_jobs(cfg, "seed=1", "seed=2"), initial_job_idx=0)

    script = fake_slurm.read_text()
    flags = sbatch_flags(script)
    expected = {"nodes": "2", "ntasks-per-node": "8", "gpus-per-node": "8", "cpus-per-task": "8",
                "mem": "64GB", "time": "240", "partition": "gpu", "job-name": "train",
                "signal": "USR1@120", "requeue": "", "array": "0-1%2"}
    assert {key: flags.get(key) for key in expected} == expected
    assert not {"account", "qos"} & flags.keys()  # null: the cluster's defaults
    submitit_dir = f"{cfg.hydra.sweep.dir}/.submitit"
    assert flags["output"] == f"{submitit_dir}/%A_%a/%A_%a_0_log.out"
    assert "\n[ -f .venv/bin/activate ] && source .venv/bin/activate\n" in script
    (srun,) = [line for line in script.splitlines() if line.startswith("srun ")]
    assert srun.endswith(f"-u -m submitit.core._submit {submitit_dir}/%j")  # each task runs the pickled job
    assert len(list(Path(submitit_dir).glob(f"{JOB_ID}_*/*_submitted.pkl"))) == 2


def test_every_rank_and_a_requeued_job_resolve_the_same_run_directory(fake_slurm):
    """All tasks of a job, and the job after a requeue, unpickle one submission: its sweep dir is fixed."""
    from submitit.core.utils import DelayedSubmission

    launcher, cfg = launcher_for(SLURM)
    launcher.launch(sweep_jobs(cfg, "seed=7"), initial_job_idx=0)
    sweep_dir = cfg.hydra.sweep.dir
    (pickled,) = Path(sweep_dir).glob(f".submitit/{JOB_ID}/{JOB_ID}_submitted.pkl")

    time.sleep(1.1)  # a fresh ${now:...} would name another directory by now
    delayed = DelayedSubmission.load(pickled)
    overrides, _, job_num = delayed.args[:3]
    job = delayed.function
    job_cfg = job.hydra_context.config_loader.load_sweep_config(job.config, list(overrides))
    assert (job_cfg.hydra.sweep.dir, job_num, job_cfg.seed) == (sweep_dir, 0, 7)  # run dir: <sweep dir>/0


def test_launcher_lives_under_hydra_and_passes_validation():
    cfg = compose("train", SLURM)  # validates; the hydra node is Hydra's own
    assert "launcher" not in cfg


@pytest.mark.slow
def test_local_launcher_runs_a_sweep_in_parallel_subprocesses(tmp_path):
    result = run_script(tmp_path, "train.py", "-m", "launcher=local", "trainer=debug", "logger=csv",
                        "data.source.rows=1000", "seed=1,2")
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "outputs" / "train" / "multirun").iterdir()
    runs = sorted(path.parent for path in sweep_dir.glob("*/run.json"))
    assert [run.name for run in runs] == [f"{n}_{sweep_dir.name}" for n in (0, 1)]  # <sweep dir>/<job num>_<sweep id>/
    records = [manifest(run) for run in runs]
    assert [(r["status"], r["seed"], r["run_dir"]) for r in records] == [
        ("completed", 1, str(runs[0])), ("completed", 2, str(runs[1]))]
    assert all((run / "metrics.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file() for run in runs)
    assert len(list(sweep_dir.glob(".submitit/*/*_result.pkl"))) == 2  # ran through submitit, not Hydra's basic launcher
