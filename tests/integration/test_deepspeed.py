"""DeepSpeed on 2 CPU processes (gloo): every strategy fits, checkpoints and resumes.

The first DeepSpeed run on a machine builds its native ops (cached afterwards); these
tests are slow by nature and marked so.
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

import factory
from tests.conftest import REPO, script_env
from tests.integration.helpers import manifest, run_dirs, run_script

pytestmark = pytest.mark.slow

TINY = ["experiment=diagnosis", "logger=csv", "trainer.accelerator=cpu", "trainer.devices=2",
        "baseline=null", "model.net.hidden_dims=[16]"]
# ddp and deepspeed_zero2 fit, checkpoint and resume in test_resume.py's two-rank tests.
STRATEGIES = ["deepspeed_zero1", "deepspeed_zero3", "deepspeed_zero2_offload", "deepspeed_zero3_offload"]


def _train(tmp_path, *overrides):
    result = run_script(tmp_path, "train.py", *TINY, *overrides, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _trained_epochs(run_dir) -> list[int]:
    rows = csv.DictReader(io.StringIO((run_dir / "csv" / "metrics.csv").read_text()))
    return sorted({int(r["epoch"]) for r in rows if r.get("train/loss_epoch")})


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategy_fits_checkpoints_and_resumes(tmp_path, strategy):
    _train(tmp_path, f"strategy={strategy}", "trainer.max_epochs=2")
    (first,) = run_dirs(tmp_path)
    record = manifest(first)
    assert record["status"] == "completed"
    assert record["strategy"]["world_size"] == 2
    sharded = strategy.startswith("deepspeed")
    assert record["checkpoint_format"] == ("sharded" if sharded else "file")
    assert (first / "checkpoints" / "last.ckpt").is_dir() == sharded

    _train(tmp_path, f"strategy={strategy}", "trainer.max_epochs=3", "ckpt_path=last")
    (second,) = [d for d in run_dirs(tmp_path) if d != first]
    resumed = manifest(second)
    assert resumed["status"] == "completed"
    assert resumed["resumed_from"] == str(first / "checkpoints" / "last.ckpt")
    assert _trained_epochs(first) == [0, 1]
    assert _trained_epochs(second) == [2]  # only the epoch after the two it resumed from


def test_zero3_consolidates_to_a_file_that_loads_without_deepspeed(tmp_path):
    _train(tmp_path, "strategy=deepspeed_zero3", "trainer.max_epochs=2")
    (run_dir,) = run_dirs(tmp_path)
    sharded = run_dir / "checkpoints" / "best.ckpt"
    exported = subprocess.run([sys.executable, str(REPO / "scripts/export.py"), str(sharded)],
                              capture_output=True, text=True, env=script_env(tmp_path), timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    consolidated = run_dir / "checkpoints" / "best-fp32.ckpt"
    assert exported.stdout.strip().splitlines()[-1] == str(consolidated)

    # Load with DeepSpeed made unimportable: the file must not need it.
    loader = ("import sys; sys.modules['deepspeed'] = None\n"
              "import torch\nfrom factory.models import SupervisedModel\n"
              f"m = SupervisedModel.load_from_checkpoint({str(consolidated)!r}, map_location='cpu').eval()\n"
              "x = torch.zeros(2, m.spec.n_numeric); c = torch.zeros(2, 0, dtype=torch.long)\n"
              "print(tuple(m(x, c).shape))")
    loaded = subprocess.run([sys.executable, "-c", loader], capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip() == "(2, 1)"

    from_dir = run_script(tmp_path, "evaluate.py", f"ckpt_path={sharded}", "data=breast_cancer")
    from_file = run_script(tmp_path, "evaluate.py", f"ckpt_path={consolidated}", "data=breast_cancer")
    assert from_dir.returncode == 0 and from_file.returncode == 0, from_dir.stderr[-2000:]
    results = [json.loads((d / "metrics.json").read_text())["test"]
               for d in run_dirs(tmp_path) if d.parent.name == "evaluate"]
    assert len(results) == 2 and results[0] == results[1]

    # Registering the run consolidates its ZeRO directory into one file in the registry.
    import torch

    from factory import registry
    from factory.models import SupervisedModel

    version = registry.register(run_dir, registry=tmp_path / "registry")
    assert version.checkpoint.is_file() and version.metadata()["checkpoint"]["source_format"] == "sharded"
    registered = registry.load(version.ref, tmp_path / "registry").model.state_dict()
    exported = SupervisedModel.load_from_checkpoint(consolidated, map_location="cpu").state_dict()
    assert registered.keys() == exported.keys()
    assert all(torch.equal(registered[k], exported[k]) for k in registered)


def test_ddp_and_zero2_reach_the_same_loss(tmp_path):
    steps = ["trainer.max_steps=6", "trainer.log_every_n_steps=1", "model.net.dropout=0.0",
             "callbacks.early_stopping.patience=100", "test=false", "trainer.limit_val_batches=1"]
    losses = {}
    for strategy in ("ddp", "deepspeed_zero2"):
        root = tmp_path / strategy
        root.mkdir()
        _train(root, f"strategy={strategy}", *steps)
        (run_dir,) = run_dirs(root)
        rows = csv.DictReader(io.StringIO((run_dir / "csv" / "metrics.csv").read_text()))
        losses[strategy] = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses["ddp"]) == 6
    assert losses["deepspeed_zero2"] == pytest.approx(losses["ddp"], rel=1e-5, abs=1e-6)


def test_notebook_train_runs_deepspeed_as_a_subprocess(isolated_env, capsys):
    cfg = factory.compose("train", [*TINY, "strategy=deepspeed_zero2", "trainer.max_epochs=1"])
    cfg.trainer.max_epochs = 2  # edits made in the notebook carry over
    result = factory.train(cfg)
    streamed = capsys.readouterr().out
    assert "epoch 2/2" in streamed
    assert result.status == "completed" and result.run_dir.is_dir()
    assert manifest(result.run_dir)["strategy"] == {"name": "deepspeed_zero", "world_size": 2}
    assert result.metrics["test"]["test/accuracy"] > 0.5
    assert result.load_model().spec.task == "binary"  # consolidates the sharded best checkpoint
