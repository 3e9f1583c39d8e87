"""Under DeepSpeed every rank holds rank 0's buffers (BatchNorm statistics), as under DDP.

A checkpoint, and so the consolidated, exported and registered model, holds rank 0's
buffers; the metrics a run records must be those of that model, not of each rank's own.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch

from tests.conftest import REPO, script_env
from tests.integration.helpers import run_dirs, run_script

PROBE_ENV = "BUFFER_PROBE"
PROBE = "+callbacks.buffer_probe._target_=tests.integration.test_zero_buffers.BufferProbe"


class BufferProbe(pl.Callback):
    """Appends to ``$BUFFER_PROBE``, at each validation and test, the buffers that differ between ranks."""

    def _check(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        from factory.distributed.ranks import gather_per_rank

        mine = {name: b.detach().cpu().clone() for name, b in pl_module.named_buffers()}
        ranks = gather_per_rank(mine)  # every rank takes part
        if trainer.is_global_zero:
            differ = sorted(name for name in mine if any(not torch.equal(r[name], mine[name]) for r in ranks))
            with open(os.environ[PROBE_ENV], "a") as f:
                f.write(json.dumps({"stage": stage, "ranks": len(ranks), "differ": differ}) + "\n")

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check(trainer, pl_module, "val")

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check(trainer, pl_module, "test")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["deepspeed_zero2", "deepspeed_zero3"])
def test_zero_run_records_the_metrics_of_its_exported_model(tmp_path, strategy):
    probe = tmp_path / "probe.jsonl"
    env = {**script_env(tmp_path), "PYTHONPATH": str(REPO), PROBE_ENV: str(probe)}
    # diagnosis' tabular_mlp has BatchNorm (norm=batch).
    trained = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train.py"), "experiment=diagnosis", "logger=csv", "baseline=null",
         "trainer.accelerator=cpu", "trainer.devices=2", f"strategy={strategy}", "model.net.hidden_dims=[16]",
         "trainer.max_epochs=3", PROBE],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert trained.returncode == 0, trained.stderr[-3000:]
    checks = [json.loads(line) for line in probe.read_text().splitlines()]
    assert [c["stage"] for c in checks] == ["val"] * 5 + ["test"]  # sanity check, 3 epochs, final validate; test
    assert all(c["ranks"] == 2 and c["differ"] == [] for c in checks), checks

    (run_dir,) = run_dirs(tmp_path)
    recorded = json.loads((run_dir / "metrics.json").read_text())["test"]
    evaluated = run_script(tmp_path, "evaluate.py", f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    (eval_dir,) = [d for d in run_dirs(tmp_path) if d.parent.name == "evaluate"]
    exported = json.loads((eval_dir / "metrics.json").read_text())["test"]
    assert exported.keys() == recorded.keys()
    assert exported == pytest.approx(recorded, abs=1e-6, rel=0)


def _broadcast_from_rank(rank: int, directory: str) -> None:
    from factory.distributed.deepspeed import broadcast_buffers

    torch.distributed.init_process_group("gloo", init_method=f"file://{directory}/init", rank=rank, world_size=2)
    try:
        torch.manual_seed(rank)  # each rank its own statistics, as after its own batches
        net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        net(torch.randn(8, 3) + rank)
        broadcast_buffers(net)
        torch.save(dict(net.named_buffers()), f"{directory}/{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_broadcast_buffers_gives_every_rank_rank_0s(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_broadcast_from_rank, args=(str(tmp_path),), nprocs=2)
    zero, one = (torch.load(tmp_path / f"{rank}.pt") for rank in (0, 1))
    assert zero.keys() == one.keys() == {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
    assert all(torch.equal(zero[k], one[k]) for k in zero)
    assert not torch.equal(zero["1.running_mean"], torch.zeros(4))  # rank 0's own, not reset
