"""Per-rank state in checkpoints, the SIGTERM exit, where a fit stands."""
from __future__ import annotations

import io
import random

import numpy as np
import pytorch_lightning as pl
import torch

from factory.data.batches import data_position
from factory.training.fault_tolerance import EXIT_INTERRUPTED, Interrupted, RankState


def _draws() -> tuple:
    return torch.rand(3).tolist(), float(np.random.rand()), random.random()


def test_rank_state_survives_a_checkpoint_file_and_restores_every_rng():
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    saved = RankState().state_dict()
    expected = _draws()
    # Lightning reloads checkpoints with weights_only=True: only tensors and plain values pass.
    buffer = io.BytesIO()
    torch.save({"callbacks": {"RankState": saved}}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["callbacks"]["RankState"]

    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    restored = RankState()
    restored.load_state_dict(loaded)
    restored.on_train_start(trainer, pl.LightningModule())
    assert _draws() == expected
    restored.on_train_start(trainer, pl.LightningModule())  # once only: later fits keep their states
    assert _draws() != expected


def test_interrupted_exits_143_and_says_how_to_continue():
    error = Interrupted(15, "/runs/x/checkpoints/last.ckpt", epoch=1, step=8)
    assert isinstance(error, SystemExit) and error.code == EXIT_INTERRUPTED == 143
    assert str(error) == ("SIGTERM at epoch 1, step 8; saved /runs/x/checkpoints/last.ckpt "
                          "(rerun the same command with resume=auto to continue)")


def test_a_fit_that_has_not_started_is_at_its_first_batch():
    assert data_position(None) == (0, 0)
    assert data_position(pl.Trainer(logger=False, enable_checkpointing=False, accelerator="cpu")) == (0, 0)
