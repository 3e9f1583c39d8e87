"""scripts/evaluate.py and scripts/export.py as users run them: the run's own split, no side effects.

One small diagnosis run (seed 0, not evaluate's old default 42) serves the fast tests;
one tiny ZeRO-2 run on 2 processes serves the slow ones.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, script_env
from tests.integration.helpers import manifest, run_dirs

DIAGNOSIS = ["experiment=diagnosis", "logger=csv", "trainer.max_epochs=3", "baseline=null", "seed=0"]
ZERO = ["experiment=diagnosis", "logger=csv", "trainer.max_epochs=2", "baseline=null", "strategy=deepspeed_zero2",
        "trainer.accelerator=cpu", "trainer.devices=2", "model.net.hidden_dims=[16]"]


def _script(root: Path, script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``scripts/<script>`` run from ``root``: outputs and factory's cache under it."""
    env = script_env(root)
    env["FACTORY_CACHE_DIR"] = str(root / "cache")
    return subprocess.run([sys.executable, str(REPO / "scripts" / script), *args], capture_output=True,
                          text=True, env=env, cwd=root, timeout=timeout)


def _train(root: Path, overrides: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    result = _script(root, "train.py", *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(root)
    return run_dir


def _evaluations(root: Path) -> list[Path]:
    return [d for d in run_dirs(root) if d.parent.name == "evaluate"]


def _test_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())["test"]


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def _snapshot(directory: Path) -> dict:
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*"))}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished diagnosis run trained with seed=0."""
    return _train(tmp_path_factory.mktemp("diagnosis"), DIAGNOSIS)


@pytest.fixture
def root(trained, tmp_path) -> Path:
    """A fresh root whose outputs/ holds a copy of the trained run (tests do not see each other's runs)."""
    shutil.copytree(trained, tmp_path / "outputs" / "diagnosis" / trained.name)
    return tmp_path


def _run(root: Path) -> Path:
    (run_dir,) = [d for d in run_dirs(root) if d.parent.name == "diagnosis"]
    return run_dir


def _best(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "best.ckpt"


def test_the_checkpoint_alone_gives_its_runs_test_metrics(root):
    run_dir = _run(root)
    result = _script(root, "evaluate.py", f"ckpt_path={_best(run_dir)}")  # the README's example
    assert result.returncode == 0, result.stderr[-3000:]
    (evaluation,) = _evaluations(root)
    assert _test_metrics(evaluation) == pytest.approx(_test_metrics(run_dir), abs=1e-6)
    trained_on, tested_on = manifest(run_dir)["data"], manifest(evaluation)["data"]
    assert tested_on == trained_on  # same table (fingerprint), same split sizes
    assert manifest(evaluation)["seed"] == 0


def test_resplitting_the_runs_own_table_is_refused(root):
    run_dir = _run(root)
    # The run's data config with the run's seed: the same split, the run's metrics.
    same = _script(root, "evaluate.py", f"ckpt_path={_best(run_dir)}", "data=breast_cancer", "seed=0")
    assert same.returncode == 0, same.stderr[-3000:]
    (evaluation,) = _evaluations(root)
    assert _test_metrics(evaluation) == pytest.approx(_test_metrics(run_dir), abs=1e-6)

    refusals = {("data=breast_cancer",): "data.split_seed=42 (trained with 0)",  # the default seed, 42
                ("data=breast_cancer", "seed=0", "data.split_seed=7"): "data.split_seed=7 (trained with 0)",
                ("data=breast_cancer", "seed=0", "data.val_fraction=0.3"): "data.val_fraction=0.3 (trained with 0.15)",
                ("seed=7",): "seed=7: the checkpoint is tested on its run's own split (seed 0",
                ("data.split_seed=7",): "data.split_seed: evaluate tests on the data config the checkpoint's run used"}
    for overrides, expected in refusals.items():
        line = _one_error_line(_script(root, "evaluate.py", f"ckpt_path={_best(run_dir)}", *overrides))
        assert expected in line, line
        assert _evaluations(root) == [evaluation]  # no run directory for a refused evaluation


def test_a_failed_evaluate_leaves_no_run_directory(root):
    missing = _script(root, "evaluate.py", "ckpt_path=outputs/diagnosis/nope/checkpoints/best.ckpt")
    assert "no such checkpoint file" in _one_error_line(missing)
    other_data = _script(root, "evaluate.py", f"ckpt_path={_best(_run(root))}", "data=fraud")
    assert "mean_radius" in _one_error_line(other_data)  # the fraud table lacks the run's columns
    assert not (root / "outputs" / "evaluate").exists()
    assert not list(root.glob("*.log"))  # nor a log file in the launch directory


def test_a_checkpoint_copied_away_from_its_run_knows_its_data(root):
    import torch

    run_dir = _run(root)
    shutil.copyfile(_best(run_dir), root / "copied.ckpt")  # no config.yaml, no meta.json around it
    result = _script(root, "evaluate.py", "ckpt_path=copied.ckpt")
    assert result.returncode == 0, result.stderr[-3000:]
    (evaluation,) = _evaluations(root)
    assert _test_metrics(evaluation) == pytest.approx(_test_metrics(run_dir), abs=1e-6)
    line = _one_error_line(_script(root, "evaluate.py", "ckpt_path=copied.ckpt", "data=breast_cancer"))
    assert "data.split_seed=42 (trained with 0)" in line  # the checkpoint's own fingerprint and split

    older = torch.load(root / "copied.ckpt", map_location="cpu", weights_only=False)
    del older["datamodule_hyper_parameters"]  # as checkpoints written before they recorded it
    torch.save(older, root / "older.ckpt")
    assert "pass data=<config>" in _one_error_line(_script(root, "evaluate.py", "ckpt_path=older.ckpt"))
    assert _evaluations(root) == [evaluation]


def test_a_run_directory_names_its_best_checkpoint(root):
    run_dir = _run(root)
    result = _script(root, "evaluate.py", f"ckpt_path={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    (evaluation,) = _evaluations(root)
    assert manifest(evaluation)["best_checkpoint"] == str(_best(run_dir))
    assert _test_metrics(evaluation) == pytest.approx(_test_metrics(run_dir), abs=1e-6)
    line = _one_error_line(_script(root, "evaluate.py", f"ckpt_path={run_dir / 'checkpoints'}"))
    assert "nor a run directory" in line and "latest" in line


def test_evaluate_runs_from_inside_a_finished_run_directory(root):
    """evaluate writes its own run directory: a finished run in the launch directory is its input, not taken."""
    run_dir = _run(root)
    before = _snapshot(run_dir)
    env = script_env(root)
    env["FACTORY_CACHE_DIR"] = str(root / "cache")
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate.py"), "ckpt_path=checkpoints/best.ckpt"],
                            capture_output=True, text=True, env=env, cwd=run_dir, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (evaluation,) = _evaluations(root)
    assert _test_metrics(evaluation) == pytest.approx(_test_metrics(run_dir), abs=1e-6)
    assert _snapshot(run_dir) == before


def test_a_registered_checkpoint_is_tested_on_its_runs_split(root):
    from factory import registry

    run_dir = _run(root)
    version = registry.register(run_dir, registry=root / "registry")
    shutil.rmtree(run_dir)  # the registry copy stands alone
    result = _script(root, "evaluate.py", f"ckpt_path={version.checkpoint}")
    assert result.returncode == 0, result.stderr[-3000:]
    (evaluation,) = _evaluations(root)
    assert _test_metrics(evaluation)["test/auroc"] == pytest.approx(version.metadata()["metrics"]["test/auroc"],
                                                                     abs=1e-6)


def test_registry_predict_keeps_the_callers_index(root):
    from factory import registry

    version = registry.register(_run(root), registry=root / "registry")
    model = registry.load(version.ref, root / "registry")
    rows = model.datamodule().split_table("test").to_pandas().iloc[:7]
    rows.index = [70, 3, 12, 99, 5, 41, 8]  # a caller's own index, not 0..n-1
    scored = model.predict(rows)
    assert list(scored.index) == [70, 3, 12, 99, 5, 41, 8]
    joined = rows.join(scored[["prediction", "score"]])
    assert joined["score"].notna().all()
    assert (scored["mean_radius"] == rows["mean_radius"]).all()


def test_export_names_a_missing_path_and_refuses_a_file_checkpoint(root):
    missing = _script(root, "export.py", str(root / "nope" / "best.ckpt"))
    assert "no such checkpoint file" in _one_error_line(missing)
    single = _script(root, "export.py", str(_run(root)))  # a run of the single strategy: its best is a file
    assert "single-file checkpoint" in _one_error_line(single)


# --- sharded (DeepSpeed ZeRO) runs: 2 processes, ~40 s to train ------------------------------

@pytest.fixture(scope="module")
def zero_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("zero"), ZERO)


@pytest.mark.slow
def test_reading_a_sharded_run_leaves_its_directory_unchanged(zero_run, tmp_path):
    run_dir = tmp_path / "outputs" / "diagnosis" / zero_run.name
    shutil.copytree(zero_run, run_dir)
    before = _snapshot(run_dir)
    for _ in range(2):  # the second read reuses the cached consolidation
        result = _script(tmp_path, "evaluate.py", f"ckpt_path={_best(run_dir)}")
        assert result.returncode == 0, result.stderr[-3000:]
    import factory

    assert factory.load_run(str(run_dir)).predictions().shape[0] == manifest(run_dir)["data"]["rows"]["test"]
    assert _snapshot(run_dir) == before  # no best-fp32.ckpt, nothing else changed
    assert len(list((tmp_path / "cache").rglob("*.ckpt"))) == 1  # one consolidation, reused
    first, second = _evaluations(tmp_path)
    assert _test_metrics(first) == _test_metrics(second)


@pytest.mark.slow
def test_a_truncated_shard_is_one_line_naming_it(zero_run, tmp_path):
    run_dir = tmp_path / "outputs" / "diagnosis" / zero_run.name
    shutil.copytree(zero_run, run_dir)
    (shard,) = _best(run_dir).glob("checkpoint/mp_rank_*_model_states.pt")
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    for script, args in (("export.py", [str(_best(run_dir))]), ("evaluate.py", [f"ckpt_path={_best(run_dir)}"])):
        line = _one_error_line(_script(tmp_path, script, *args))
        assert str(shard) in line and "PytorchStreamReader" not in line, line
    assert not (run_dir / "checkpoints" / "best-fp32.ckpt").exists()
    assert not (tmp_path / "outputs" / "evaluate").exists()
