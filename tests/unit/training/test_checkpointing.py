"""RunCheckpoint: one write per checkpoint, last.ckpt a link holding what Lightning would have written."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.demos.boring_classes import BoringModel

from factory.training.checkpointing import RunCheckpoint, unshare
from factory.training.fault_tolerance import PreemptionCheckpoint, RankState

SCORES = [3.0, 1.0, 2.0, 0.5]  # mode min: epochs 0, 1 and 3 improve, epoch 2 does not


class Scored(BoringModel):
    """4 steps an epoch; logs SCORES[epoch] as ``score`` at each epoch end."""

    def on_train_epoch_end(self) -> None:
        self.log("score", SCORES[self.current_epoch])


def fit(dirpath: Path, kind: type, epochs: int = len(SCORES), *extra: pl.Callback) -> list[str]:
    """Train ``Scored`` with ``kind`` of checkpoint callback; the paths each write went to."""
    pl.seed_everything(7, verbose=False)
    callback = kind(dirpath=str(dirpath), filename="best", monitor="score", mode="min", save_last=True,
                    save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False)
    trainer = pl.Trainer(max_epochs=epochs, limit_train_batches=4, limit_val_batches=0, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                         callbacks=[callback, RankState(), *extra])
    writes = []
    save = trainer.save_checkpoint
    trainer.save_checkpoint = lambda path, *a, **k: (writes.append(Path(path).name), save(path, *a, **k))[1]
    trainer.fit(Scored())
    return writes


def same(a, b) -> bool:
    """Deep equality of two loaded checkpoints (tensors by value)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.parametrize("epochs", [1, 2, 3, 4])
def test_last_ckpt_is_lightnings_written_once(tmp_path, epochs):
    ckpts = tmp_path / "checkpoints"
    assert fit(ckpts, ModelCheckpoint, epochs) == ["best.ckpt", "last.ckpt"] * (min(epochs, 2) + (epochs == 4))
    lightning = {name: load(ckpts / name) for name in ("best.ckpt", "last.ckpt")}
    shutil.rmtree(ckpts)  # the same directory: the paths recorded in the states match

    assert fit(ckpts, RunCheckpoint, epochs) == ["best.ckpt"] * (min(epochs, 2) + (epochs == 4))
    assert not (ckpts / "last.ckpt").is_symlink() and (ckpts / "last.ckpt").samefile(ckpts / "best.ckpt")
    assert same(load(ckpts / "last.ckpt"), lightning["last.ckpt"])
    # best.ckpt is last.ckpt's bytes: Lightning's own best.ckpt differs from its last.ckpt only in
    # the last checkpoint's path, which it records after writing best.ckpt at the first save.
    best, expected = load(ckpts / "best.ckpt"), lightning["best.ckpt"]
    (key,) = [k for k in expected["callbacks"] if k.startswith("ModelCheckpoint")]
    if epochs == 1:
        assert expected["callbacks"][key]["last_model_path"] == ""
        expected["callbacks"][key]["last_model_path"] = str(ckpts / "last.ckpt")
    assert same(best, expected)
    assert sorted(p.name for p in ckpts.iterdir()) == ["best.ckpt", "last.ckpt"]  # no staging file left


def test_a_later_write_to_either_name_leaves_the_other_whole(tmp_path):
    ckpts = tmp_path / "checkpoints"
    # Epoch 1 links last.ckpt to best.ckpt at step 8; step 10 rewrites last.ckpt (preemption's
    # periodic save), epoch 2 does not improve: best.ckpt must still be step 8's.
    fit(ckpts, RunCheckpoint, 3, PreemptionCheckpoint(str(ckpts), every_n_train_steps=10))
    assert load(ckpts / "best.ckpt")["global_step"] == 8
    assert load(ckpts / "last.ckpt")["global_step"] == 10
    assert not (ckpts / "last.ckpt").samefile(ckpts / "best.ckpt")


def test_resumes_from_lightnings_checkpoints_and_back(tmp_path):
    ckpts = tmp_path / "checkpoints"
    fit(ckpts, ModelCheckpoint, 2)
    key = RunCheckpoint(monitor="score", mode="min").state_key
    assert key == ModelCheckpoint(monitor="score", mode="min").state_key
    assert key in load(ckpts / "last.ckpt")["callbacks"]
    callback = RunCheckpoint(monitor="score", mode="min")
    callback.state_key
    callback.monitor = "loss"  # the key is kept, not frozen
    assert callback.state_key == ModelCheckpoint(monitor="loss", mode="min").state_key


def test_copies_where_links_are_refused(tmp_path, monkeypatch):
    def refuse(*args):
        raise OSError("links not supported")

    monkeypatch.setattr(os, "link", refuse)
    ckpts = tmp_path / "checkpoints"
    fit(ckpts, RunCheckpoint, 2)
    assert not (ckpts / "last.ckpt").samefile(ckpts / "best.ckpt")
    assert (ckpts / "last.ckpt").read_bytes() == (ckpts / "best.ckpt").read_bytes()


def test_unshare_removes_only_a_name_that_shares_its_file(tmp_path):
    best, last, alone = tmp_path / "best.ckpt", tmp_path / "last.ckpt", tmp_path / "alone.ckpt"
    best.write_bytes(b"epoch 1")
    os.link(best, last)
    alone.write_bytes(b"epoch 0")
    unshare(SimpleNamespace(is_global_zero=False), last)  # only rank 0 writes a one-file checkpoint
    assert last.exists()
    for path in (last, alone, tmp_path / "missing.ckpt"):
        unshare(SimpleNamespace(is_global_zero=True), path)
    assert not last.exists() and best.read_bytes() == b"epoch 1" and alone.read_bytes() == b"epoch 0"
