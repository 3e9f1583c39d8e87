"""Schedules run as configured: the printed crontab line, run as cron would, goes through the
scheduler (lock, state), logs under reports/, records trigger `schedule`, and a report's
`run_dir: latest:<task>` names that task's newest completed run when it runs."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.conftest import REPO, script_env

# A report notebook that says what it got, and composes from the user's config directory (inherited).
CELLS = [
    ("run_dir = None", ["parameters"]),
    ("import factory\nprint('run_dir:', run_dir)\n"
     "print('composed:', factory.compose('train', ['experiment=my_exp']).task_name)", []),
]


def _user_configs(root: Path) -> Path:
    """A user's config directory: an experiment, a notebook, and two scheduled reports on `latest:` runs."""
    user = root / "my_configs"
    (user / "experiment").mkdir(parents=True)
    (user / "experiment" / "my_exp.yaml").write_text("# @package _global_\ntask_name: my_exp\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src, metadata={"tags": tags})
                                         for src, tags in CELLS])
    nbformat.write(nb, user / "nightly.ipynb")
    (user / "report").mkdir()
    for name, task in [("nightly", "fraud_detection"), ("orphan", "no_such_task")]:
        (user / "report" / f"{name}.yaml").write_text(
            f"name: {name}\nnotebook: {user / 'nightly.ipynb'}\nparameters: {{run_dir: 'latest:{task}'}}\n"
            "required: [run_dir]\nschedule: '* * * * *'\ntimeout: 120\n")
    return user


def _schedule(root: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "schedule.py"), *args], capture_output=True,
                          text=True, env=env, cwd=root, timeout=120)


def _as_cron(line: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command part of a crontab line, in cron's near-empty environment, from another directory."""
    command = line.split(None, 5)[5].rsplit("  # factory report", 1)[0].replace("\\%", "%")
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, cwd=cwd, timeout=180,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "WANDB_SILENT": "true"})


def test_crontab_without_a_scheduled_report_says_so(tmp_path: Path):
    env = script_env(tmp_path)
    env.pop("FACTORY_CONFIG_DIR", None)
    done = _schedule(tmp_path, "--crontab", env=env)
    assert done.returncode == 0 and done.stdout == ""
    assert done.stderr.strip() == "no report in conf/report/ has a schedule"


@pytest.mark.slow
def test_crontab_line_runs_the_newest_completed_run_through_the_scheduler(tmp_path: Path):
    import factory

    result = factory.train(factory.compose("train", [
        "experiment=fraud_detection", "logger=csv", "data.source.rows=500", "trainer.max_epochs=1"]))
    assert result.status == "completed"
    user = _user_configs(tmp_path)
    env = {**script_env(tmp_path), "FACTORY_CONFIG_DIR": str(user)}
    printed = _schedule(tmp_path, "--crontab", env=env)
    assert printed.returncode == 0, printed.stderr
    lines = dict(zip(["nightly", "orphan"], printed.stdout.splitlines()))
    reports = tmp_path / "reports"

    done = _as_cron(lines["nightly"], REPO.parent)
    assert done.returncode == 0 and done.stdout == "", done.stderr  # everything went to the log
    log = (reports / "nightly" / "schedule.log").read_text()
    assert "schedule: nightly completed" in log
    [entry] = json.loads((reports / "index.json").read_text())["runs"]
    assert (entry["name"], entry["trigger"], entry["status"]) == ("nightly", "schedule", "completed")
    assert entry["parameters"]["run_dir"] == str(Path(result.run_dir).absolute())  # resolved when it ran
    assert entry["source_run_ids"] == [Path(result.run_dir).name]
    executed = (reports / entry["ipynb"]).read_text()
    assert "composed: my_exp" in executed  # the kernel inherited the user's config directory

    done = _as_cron(lines["orphan"], REPO.parent)  # no completed run of its task: a failed run, one line
    assert done.returncode == 1
    log = (reports / "orphan" / "schedule.log").read_text()
    assert ("error: report.parameters.run_dir: latest:no_such_task: no completed run of task "
            f"'no_such_task' under {tmp_path}/outputs\n") in log
    assert "Traceback" not in log
    state = json.loads((reports / ".schedule-state.json").read_text())
    assert state["orphan"]["status"] == "failed" and state["nightly"]["status"] == "completed"


def test_a_crontab_line_waits_for_a_run_in_progress(tmp_path: Path):
    """While a run of a report holds its lock, its crontab line starts nothing and says so."""
    from factory.reports.schedule import report_lock

    user = _user_configs(tmp_path)
    env = {**script_env(tmp_path), "FACTORY_CONFIG_DIR": str(user)}
    line = _schedule(tmp_path, "--crontab", "--report", "orphan", env=env).stdout.strip()
    assert shlex.split(line.split(None, 5)[5])[0] == "cd"
    with report_lock(tmp_path / "reports", "orphan") as held:
        assert held
        done = _as_cron(line, tmp_path)
    assert done.returncode == 0
    assert "orphan is still running; skipping this tick" in (tmp_path / "reports" / "orphan" / "schedule.log").read_text()
