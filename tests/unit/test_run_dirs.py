"""Run ids and fixed run directories, before anything trains: names only, finished runs refused."""
from __future__ import annotations

from pathlib import Path

import pytest

from factory import compose, manifest, run_dirs
from factory.config.resolvers import check_run_id, new_run_id
from factory.errors import ConfigError
from tests.unit.test_resume import make_run


@pytest.mark.parametrize("name", ["mine", "slurm_4242", "2026-01-01_00-00-00_abcdef", "0_2026-01-01_x", "v1.2"])
def test_a_run_id_is_a_name(name):
    assert check_run_id(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/abs", "-x", ".hidden", "x y", "a\nb", "x" * 129])
def test_a_run_id_is_not_a_path(name):
    with pytest.raises(ConfigError, match=r"^FACTORY_RUN_ID=.*: a run id is a name, not a path"):
        check_run_id(name)


def test_new_run_ids_are_names():
    assert check_run_id(new_run_id())


def test_a_fixed_run_id_is_checked_as_the_config_resolves(isolated_env, monkeypatch):
    done = make_run(isolated_env, "done", "completed", "01:00:00")
    before = (done / manifest.MANIFEST).read_bytes()
    monkeypatch.setenv("FACTORY_RUN_ID", "done")
    with pytest.raises(ConfigError, match=f"^{done} holds a run that completed, and a finished run is never "
                                          "overwritten; unset FACTORY_RUN_ID for a new run, or set a new one$"):
        compose("train", [])
    monkeypatch.setenv("FACTORY_RUN_ID", "fresh")
    assert Path(compose("train", []).paths.run_dir).name == "fresh"
    assert (done / manifest.MANIFEST).read_bytes() == before


def test_an_unfinished_run_of_the_same_config_may_start_over_but_not_another_configs(isolated_env):
    stopped = make_run(isolated_env, "stopped", "interrupted", "01:00:00")
    run_dirs.refuse_taken(compose("train", ["resume=auto"]), stopped, auto=False)  # e.g. a SLURM requeue
    with pytest.raises(ConfigError, match=r"holds a run of another config \(differs at seed, .*rerun with the "
                                          "same overrides, or choose another run directory$"):
        run_dirs.refuse_taken(compose("train", ["resume=auto", "seed=7"]), stopped, auto=False)


def test_a_directory_with_an_unreadable_record_is_not_written_over(isolated_env, monkeypatch):
    broken = isolated_env / "outputs" / "train" / "broken"
    broken.mkdir(parents=True)
    (broken / manifest.MANIFEST).write_text("{not json")
    monkeypatch.setenv("FACTORY_RUN_ID", "broken")
    with pytest.raises(ConfigError, match=r"broken/run.json: unreadable as a run record \(JSONDecodeError\)"):
        compose("train", [])
