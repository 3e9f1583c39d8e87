"""Run ids and fixed run directories, before anything trains: names only, finished runs refused; evaluate in a
run's directory refuses a data config whose credential the run recorded masked."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from factory import compose
from factory.rundir import manifest
from factory.rundir import guard
from factory.rundir.layout import check_run_id, new_run_id
from factory.errors import ConfigError
from tests.unit.rundir.test_resume import make_run


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
    guard.refuse_taken(compose("train", ["resume=auto"]), stopped, auto=False)  # e.g. a SLURM requeue
    with pytest.raises(ConfigError, match=r"holds a run of another config \(differs at seed, .*rerun with the "
                                          "same overrides, or choose another run directory$"):
        guard.refuse_taken(compose("train", ["resume=auto", "seed=7"]), stopped, auto=False)


def test_a_directory_with_an_unreadable_record_is_not_written_over(isolated_env, monkeypatch):
    broken = isolated_env / "outputs" / "train" / "broken"
    broken.mkdir(parents=True)
    (broken / manifest.MANIFEST).write_text("{not json")
    monkeypatch.setenv("FACTORY_RUN_ID", "broken")
    with pytest.raises(ConfigError, match=r"broken/run.json: unreadable as a run record \(JSONDecodeError\)"):
        compose("train", [])


# --- evaluate in a run's directory: a credential the run recorded masked ----------------------

def _trained_run(root: Path, overrides: list[str]) -> Path:
    """A run directory as training leaves it for evaluate: config.yaml (by the real writer) beside checkpoints/."""
    run_dir = root / "outputs" / "train" / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    manifest.write_config(run_dir, compose("train", ["data=warehouse", *overrides]))
    (run_dir / "checkpoints" / "best.ckpt").write_bytes(b"")  # settle reads the run, not the weights
    return run_dir / "checkpoints" / "best.ckpt"


@pytest.mark.parametrize("override,key", [
    ("data.source.url=postgresql://etl:hunter2@db.internal/sales", "data.source.url"),
    ("data.source.query='SELECT * FROM t -- password=hunter2'", "data.source.query"),
])
def test_evaluate_refuses_a_data_config_whose_credential_was_masked(isolated_env, override, key):
    from factory.training.evaluation import settle

    checkpoint = _trained_run(isolated_env, [override])
    assert "hunter2" not in (checkpoint.parent.parent / manifest.CONFIG).read_text()
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: the checkpoint's run recorded this credential "
                                          r"masked \('\*\*\*', in .*config.yaml\); pass data=<config> with it "
                                          r"\(and seed=42\), or give it in training as \$\{oc.env:<VAR>\}"):
        settle(compose("evaluate", [f"ckpt_path={checkpoint}"]))


def test_a_secret_key_masked_in_a_checkpoint_is_named(tmp_path):
    from factory import redact
    from factory.training.evaluation import Trained, adopt, check_unmasked

    recorded = redact.container({"source": {"url": "duckdb:///x.duckdb", "options": {"api_key": "k-123"}}})
    with pytest.raises(ConfigError, match=r"^data\.source\.options\.api_key: the checkpoint's run recorded"):
        check_unmasked(Trained(recorded, 0, None, tmp_path / "best.ckpt"))
    cfg = compose("evaluate", ["ckpt_path=x"], check=False)
    with pytest.raises(ConfigError, match=r"^data\.source\.options\.api_key:"):
        adopt(cfg, Trained(recorded, 42, None, tmp_path / "best.ckpt"))  # the checkpoint's own record


def test_a_credential_from_the_environment_resolves_again_at_evaluate(isolated_env, monkeypatch):
    from factory.training.evaluation import settle

    monkeypatch.setenv("DB_PASSWORD", "hunter2")
    checkpoint = _trained_run(isolated_env, ["data.source.url='postgresql://etl:${oc.env:DB_PASSWORD}@db/sales'"])
    assert "hunter2" not in (checkpoint.parent.parent / manifest.CONFIG).read_text()
    monkeypatch.setenv("DB_PASSWORD", "rotated")  # read where evaluate runs, not from the run's files
    cfg, _ = settle(compose("evaluate", [f"ckpt_path={checkpoint}"]))
    assert cfg.data.source.url == "postgresql://etl:rotated@db/sales"
