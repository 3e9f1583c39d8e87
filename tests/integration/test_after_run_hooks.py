"""After-run hooks (``after_run:`` in conf/train.yaml, ``factory.training.hooks``) on real tiny runs.

Each hook is called once ``run.json`` is final; a failing hook is logged and leaves the
run's status as it is, and the hooks after it still run. A name that is not a function
is a one-line config error before anything trains.
"""
from __future__ import annotations

import json
import logging

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from factory import compose
from factory.errors import ConfigError, DataError
from factory.training.recipe import run
from tests.integration.helpers import manifest, run_dirs, run_script

TINY = ["trainer=debug", "logger=csv", "data.source.rows=2000"]
HERE = __name__  # hooks below are named by this module's dotted path, as a config names any hook
CALLS: list[dict] = []


def recording_hook(run) -> None:
    """Write down what the hook saw, and run.json as it was on disk when it was called."""
    CALLS.append({"hook": "recording", "status": run.status, "finished": run.finished,
                  "on_disk": json.loads((run.run_dir / "run.json").read_text())["status"],
                  "metrics": run.metrics, "loggers": [type(logger).__name__ for logger in run.loggers],
                  "error": run.error})


def failing_hook(run) -> None:
    CALLS.append({"hook": "failing"})
    raise RuntimeError("the tracker is down")


@pytest.fixture(autouse=True)
def _calls():
    CALLS.clear()
    yield
    CALLS.clear()


def _hooks(*names: str) -> str:
    return "after_run=[" + ",".join(f"{HERE}.{name}" for name in names) + "]"


def test_hooks_run_in_order_once_run_json_is_final(isolated_env):
    result = run(compose("train", TINY + [_hooks("recording_hook", "recording_hook")]))
    assert result.status == "completed"
    assert len(CALLS) == 2
    seen = CALLS[0]
    assert seen["status"] == seen["on_disk"] == "completed" and seen["finished"]
    assert seen["metrics"] == result.metrics and seen["error"] is None
    assert seen["loggers"]  # the Trainer's (under fast_dev_run, the CSV logger factory puts back)


def test_a_failing_hook_is_logged_and_the_run_stays_completed(isolated_env, caplog):
    with caplog.at_level(logging.ERROR, logger="factory.training.hooks"):
        result = run(compose("train", TINY + [_hooks("failing_hook", "recording_hook")]))
    assert result.status == "completed"
    assert manifest(result.run_dir)["status"] == "completed" and manifest(result.run_dir)["error"] is None
    assert [call["hook"] for call in CALLS] == ["failing", "recording"]  # the next hook still ran
    [line] = [r.getMessage() for r in caplog.records if "after_run" in r.getMessage()]
    assert line == (f"after_run: {HERE}.failing_hook failed on run {result.run_dir.name}: "
                    "the tracker is down")


def test_a_failed_run_hands_its_error_to_the_hooks_and_stays_failed(isolated_env):
    table = isolated_env / "only.csv"
    pacsv.write_csv(pa.table({"y": [0, 1] * 20}), table)
    overrides = ["data=files", "logger=csv", "trainer=debug", f"data.source.path={table}", "data.source.target=y",
                 _hooks("failing_hook", "recording_hook")]
    with pytest.raises(DataError, match="no feature columns"):  # the run's error, not the hook's
        run(compose("train", overrides))
    (run_dir,) = run_dirs(isolated_env)
    assert manifest(run_dir)["status"] == "failed"
    seen = CALLS[-1]
    assert seen["status"] == seen["on_disk"] == "failed" and not seen["finished"]
    assert isinstance(seen["error"], DataError) and seen["metrics"] == {}


def test_no_hooks_is_allowed(isolated_env):
    result = run(compose("train", TINY + ["after_run=[]"]))
    assert result.status == "completed" and CALLS == []


@pytest.mark.parametrize(("entry", "problem"), [
    ("factory.reprts.after_run", "'factory.reprts.after_run': no module factory.reprts"),
    ("factory.reports.after_rn", "'factory.reports.after_rn': module factory.reports has no function after_rn"),
    ("after_run", "'after_run' is not a dotted path to a function (package.module.function)"),
])
def test_a_bad_hook_name_is_one_config_error_before_training(isolated_env, entry, problem):
    cfg = compose("train", TINY + [f"after_run=[factory.tracking.loggers.after_run,{entry}]"], check=False)
    with pytest.raises(ConfigError) as raised:
        run(cfg)
    assert str(raised.value) == f"after_run[1]: {problem}"
    assert run_dirs(isolated_env) == []  # nothing started


def test_the_cli_names_a_bad_hook_in_one_line(tmp_path):
    done = run_script(tmp_path, "train.py", *TINY, "after_run=[factory.nowhere.hook]", timeout=120)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: after_run[0]: 'factory.nowhere.hook': no module factory.nowhere"], done.stderr[-2000:]
    assert not (tmp_path / "outputs").exists() or run_dirs(tmp_path) == []
