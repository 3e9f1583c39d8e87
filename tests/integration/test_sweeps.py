"""Sweeps through the CLI: Optuna trials, pruning, resume after a kill, and grid sweep.json."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from factory.sweeps import journal
from factory.sweeps.trial import open_storage
from tests.conftest import REPO, script_env
from tests.integration.helpers import manifest, run_script

TINY = ["experiment=diagnosis", "logger=csv", "trainer.max_epochs=3"]
OPTUNA = ["-m", "hparams_search=optuna", *TINY]


def sweep_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in (root / "outputs").rglob(journal.JOURNAL))


def test_optuna_sweep_runs_trials_and_records_them(tmp_path):
    done = run_script(tmp_path, "train.py", *OPTUNA, "hydra.sweeper.n_trials=3", "~hydra/sweeper/pruner")
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep,) = sweep_dirs(tmp_path)
    record = journal.read(sweep)
    assert record["kind"] == "optuna" and record["status"] == "completed"
    assert record["objective"] == {"metric": "val/loss", "mode": "min"}
    trials = record["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2] and {t["status"] for t in trials} == {"completed"}
    for t in trials:  # each trial is a real run with the sampled values in its config
        run = Path(t["run_dir"])
        assert manifest(run)["status"] == "completed"
        assert t["value"] == pytest.approx(manifest(run)["monitor"]["best"])
        config = (run / "config.yaml").read_text()
        assert f"lr: {t['params']['model.optimizer.lr']}" in config
        assert set(t["params"]) == {"model.optimizer.lr", "model.net.dropout", "model.net.hidden_dims"}
        assert not any(o.startswith("trial=") for o in t["overrides"])
    assert record["best"]["value"] == min(t["value"] for t in trials)
    study = optuna.load_study(study_name=record["study"]["name"], storage=open_storage(record["study"]["storage"]))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert study.best_value == pytest.approx(record["best"]["value"])


def test_pruned_trials_stop_early_and_are_recorded(tmp_path):
    # A pruner that prunes every trial once it has reported one epoch: deterministic.
    done = run_script(tmp_path, "train.py", *OPTUNA, "trainer.max_epochs=4", "hydra.sweeper.n_trials=2",
                      "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.upper=0.0")
    assert done.returncode == 0, done.stderr[-3000:]
    record = journal.read(sweep_dirs(tmp_path)[0])
    assert [t["status"] for t in record["trials"]] == ["pruned", "pruned"] and record["best"] is None
    run = Path(record["trials"][0]["run_dir"])
    assert manifest(run)["status"] == "pruned"
    with open(run / "csv" / "metrics.csv") as f:
        trained = {int(row["epoch"]) for row in csv.DictReader(f) if row.get("train/loss_epoch")}
    assert trained == {0}  # stopped after the first of 4 epochs


def test_a_failing_trial_is_recorded_and_the_others_run(tmp_path):
    done = run_script(tmp_path, "train.py", "-m", *TINY, "model.optimizer.lr=-1,0.01", "report=sweep_report")
    assert done.returncode == 1
    assert "1 of 2 trials failed (trial 0: ConfigError: model.optimizer.lr: must be > 0, got -1)" \
        in done.stderr.strip().splitlines()[-1]
    record = journal.read(sweep_dirs(tmp_path)[0])
    assert record["kind"] == "grid" and record["status"] == "completed"
    first, second = record["trials"]
    assert first["status"] == "failed" and "model.optimizer.lr: must be > 0" in first["error"]
    assert second["status"] == "completed" and second["params"] == {"model.optimizer.lr": 0.01}
    assert record["best"]["number"] == 1
    # report=sweep_report ran once, on the whole sweep, not after each trial
    (report,) = json.loads((tmp_path / "reports" / "index.json").read_text())["runs"]
    assert report["name"] == "sweep_report" and report["trigger"] == "sweep" and report["status"] == "completed"
    assert Path(report["parameters"]["sweep_dir"]).resolve() == Path(record["sweep_dir"])
    assert "<img" in (tmp_path / "reports" / report["html"]).read_text()


def test_a_bad_config_stops_an_optuna_sweep_before_any_trial_runs(tmp_path):
    done = run_script(tmp_path, "train.py", *OPTUNA, "trainer.max_epochs=abc", "hydra.sweeper.n_trials=2")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: trial 0 (model.optimizer.lr=") and line.endswith(
        "trainer.max_epochs: expected int, got str 'abc'")
    record = journal.read(sweep_dirs(tmp_path)[0])
    assert record["status"] == "failed" and [t["status"] for t in record["trials"]] == ["interrupted"]
    assert not list((tmp_path / "outputs").rglob("run.json"))


@pytest.mark.slow
def test_a_killed_sweep_resumes_where_it_stopped(tmp_path):
    args = [sys.executable, str(REPO / "scripts" / "train.py"), *OPTUNA, "hydra.sweeper.n_trials=4",
            "~hydra/sweeper/pruner"]
    first = subprocess.Popen(args, cwd=tmp_path, env=script_env(tmp_path), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:  # kill -9 once two trials are finished and a third runs
            found = sweep_dirs(tmp_path)
            if found:
                trials = journal.read(found[0])["trials"]
                if sum(t["status"] == "completed" for t in trials) >= 2 and len(trials) >= 3:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the sweep never finished two trials")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    (sweep,) = sweep_dirs(tmp_path)
    before = journal.read(sweep)
    assert before["status"] == "running"

    done = subprocess.run([*args, "hydra.sweeper.resume=true"], cwd=tmp_path, env=script_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sweep_dirs(tmp_path) == [sweep]  # continued in place, no second sweep directory
    after = journal.read(sweep)
    assert after["status"] == "completed"
    kept = {t["number"]: t for t in before["trials"] if t["status"] == "completed"}
    for number, trial in kept.items():  # finished trials are not rerun
        assert after["trials"][number]["run_dir"] == trial["run_dir"]
        assert after["trials"][number]["finished_at"] == trial["finished_at"]
    sampled = [json.dumps(t["params"], sort_keys=True) for t in after["trials"] if t["status"] == "completed"]
    assert len(set(sampled)) == len(sampled)  # the resumed sampler does not repeat finished trials
    statuses = [t["status"] for t in after["trials"]]
    assert statuses.count("completed") == 4 and set(statuses) <= {"completed", "interrupted"}
    study = optuna.load_study(study_name=after["study"]["name"], storage=open_storage(after["study"]["storage"]))
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) == 4


@pytest.mark.slow
def test_trials_run_in_parallel_under_the_submitit_launcher(tmp_path):
    done = run_script(tmp_path, "train.py", *OPTUNA, "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2",
                      "launcher=local")
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = journal.read(sweep_dirs(tmp_path)[0])["trials"]
    assert first["status"] == second["status"] == "completed"
    assert second["started_at"] <= first["finished_at"]  # both ran at once, each in its own process


def test_sweeping_a_config_group_keeps_one_sweep(tmp_path):
    # experiment= sets task_name: each job's own value would split the sweep over outputs/<task>/.
    done = run_script(tmp_path, "train.py", "-m", "experiment=diagnosis,digits", "logger=csv", "trainer=debug")
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep,) = sweep_dirs(tmp_path)
    assert sweep.parent == tmp_path / "outputs" / "train" / "multirun"  # the command's task, not a job's
    record = journal.read(sweep)
    assert record["status"] == "completed" and [t["status"] for t in record["trials"]] == ["completed"] * 2
    assert sorted(p.parent for p in (tmp_path / "outputs").rglob("run.json")) == \
        sorted(Path(t["run_dir"]) for t in record["trials"])
    assert {Path(t["run_dir"]).parent for t in record["trials"]} == {sweep}
    assert [manifest(Path(t["run_dir"]))["task_name"] for t in record["trials"]] == ["diagnosis", "digits"]
    assert f"sweep {sweep}: 2 completed" in done.stdout + done.stderr  # the summary finds its trials


def test_every_trial_has_its_own_run_id(tmp_path):
    import factory

    for _ in range(2):  # two sweeps: trial 0 of each is its own run
        done = run_script(tmp_path, "train.py", "-m", "experiment=diagnosis", "logger=csv", "trainer=debug",
                          "seed=1,2")
        assert done.returncode == 0, done.stderr[-3000:]
    trials = [t for sweep in sweep_dirs(tmp_path) for t in journal.read(sweep)["trials"]]
    ids = [t["run_id"] for t in trials]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert [i.split("_", 1)[0] for i in ids] == ["0", "1", "0", "1"]  # <job number>_<sweep id>
    for trial in trials:
        assert Path(trial["run_dir"]).name == trial["run_id"] == manifest(Path(trial["run_dir"]))["run_id"]
    runs = factory.runs(tmp_path)
    assert runs["run_id"].is_unique and sorted(runs["run_id"]) == sorted(ids)
    assert all(factory.load_run(i, root=tmp_path).run_dir == Path(t["run_dir"]) for i, t in zip(ids, trials))


def test_slurm_without_slurm_is_one_line_and_a_failed_sweep(tmp_path):
    env = {**script_env(tmp_path), "PATH": os.path.dirname(sys.executable)}  # python, but no srun/sbatch
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "-m", "launcher=slurm",
                           "trainer=debug", "logger=csv"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: launcher=slurm: no SLURM here (srun and sbatch not on PATH)")
    (sweep,) = sweep_dirs(tmp_path)
    record = journal.read(sweep)
    assert record["status"] == "failed" and record["error"] == line.removeprefix("error: ")
    assert not list((tmp_path / "outputs").rglob("run.json"))
