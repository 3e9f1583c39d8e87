"""Bad input: one clear line naming what is wrong, non-zero exit, the run marked failed."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from factory import compose
from factory.errors import ConfigError, DataError
from factory.training.recipe import run
from tests.integration.helpers import failed_run as _failed_run
from tests.integration.helpers import manifest, run_dirs, run_script

FILES = ["data=files", "logger=csv", "trainer=debug"]


def _csv(path, **columns):
    pacsv.write_csv(pa.table(columns), path)
    return path


def test_missing_data_file(isolated_env):
    _failed_run(isolated_env, FILES + ["data.source.path=nope.csv", "data.source.target=y"],
                DataError, "nope.csv")


def test_unknown_target_column(isolated_env):
    path = _csv(isolated_env / "t.csv", a=[1.0, 2.0, 3.0, 4.0], y=[0, 1, 0, 1])
    _failed_run(isolated_env, FILES + [f"data.source.path={path}", "data.source.target=label"],
                DataError, "label")


def test_unknown_feature_column(isolated_env):
    path = _csv(isolated_env / "t.csv", a=[1.0, 2.0, 3.0, 4.0], y=[0, 1, 0, 1])
    _failed_run(isolated_env, FILES + [f"data.source.path={path}", "data.source.target=y",
                                       "data.source.features=[a,b]"], DataError, "'b'|\\bb\\b")


def test_empty_table(isolated_env):
    path = isolated_env / "empty.csv"
    path.write_text("a,y\n")
    _failed_run(isolated_env, FILES + [f"data.source.path={path}", "data.source.target=y",
                                       "data.source.task=binary"], DataError, "empty|no rows")


def test_single_class_target(isolated_env):
    path = _csv(isolated_env / "t.csv", a=[1.0, 2.0, 3.0, 4.0], y=[1, 1, 1, 1])
    _failed_run(isolated_env, FILES + [f"data.source.path={path}", "data.source.target=y",
                                       "data.source.task=binary"], DataError, "one class|single class")


def test_non_numeric_value_in_numeric_column(isolated_env):
    path = isolated_env / "t.csv"
    path.write_text("amount,y\n1.5,0\n2.5,1\n12 EUR,0\n4.0,1\n")
    _failed_run(isolated_env, FILES + [f"data.source.path={path}", "data.source.target=y",
                                       "data.source.categorical=[]"], DataError, "amount.*12 EUR")


def test_unreachable_warehouse(isolated_env):
    url = "postgresql://user:secret@127.0.0.1:1/db"
    with pytest.raises(DataError) as info:
        run(compose("train", ["data=warehouse", f"data.source.url={url}", "logger=csv", "trainer=debug"]))
    assert "127.0.0.1" in str(info.value) and "secret" not in str(info.value)


def test_missing_checkpoint_exits_2(tmp_path):
    result = run_script(tmp_path, "evaluate.py", "ckpt_path=missing.ckpt")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: ckpt_path: no such checkpoint file: missing.ckpt"


def test_data_error_from_cli_is_one_line_exit_2(tmp_path):
    result = run_script(tmp_path, "train.py", *FILES, "data.source.path=nope.csv", "data.source.target=y")
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nope.csv" in errors[0]
    assert "Traceback" not in result.stderr
    (run_dir,) = run_dirs(tmp_path)
    assert manifest(run_dir)["status"] == "failed"


def test_bad_optimizer_kwarg_names_key(isolated_env):
    with pytest.raises(ConfigError, match=r"^model\.optimizer\.lrr: unknown key \(did you mean lr\?\)"):
        run(compose("train", ["trainer=debug", "logger=csv", "data.source.rows=2000",
                              "+model.optimizer.lrr=0.1"]))


def test_strategy_that_cannot_fit_stops_before_training(isolated_env):
    overrides = ["model=mlp_wide", "model.net.width=512", "logger=csv", "data.source.rows=2000",
                 "plan.device_memory_gb=0.01"]
    _failed_run(isolated_env, overrides, ConfigError, r"^strategy=single needs ~.* per device")
    # The same config with the check off trains.
    assert run(compose("train", overrides + ["plan.check=false", "trainer=debug"])).status == "completed"
