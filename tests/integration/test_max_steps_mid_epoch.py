"""trainer.max_steps that ends training inside an epoch: the run completes (EarlyStopping finds no val
metric in that cut epoch; it must skip it, not fail the run), and a tabular run likewise."""
from __future__ import annotations

import factory
from tests.integration.helpers import TINY_DIAGNOSIS
from tests.integration.test_gpt_train import overrides


def test_a_language_model_stopped_by_max_steps_mid_epoch_completes(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path))
    # 10 steps an epoch (test_gpt_train.SMALL): 3 steps stop inside the first, before any validation
    result = factory.train(factory.compose("train", overrides(tmp_path, "trainer.max_steps=3")))
    assert result.status == "completed"
    assert "val/loss" in result.metrics["val"]  # validated after fit, on the weights it ended with


def test_a_tabular_model_stopped_by_max_steps_mid_epoch_completes(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path))
    result = factory.train(factory.compose("train", [*TINY_DIAGNOSIS, "trainer.max_epochs=3", "trainer.max_steps=1"]))
    assert result.status == "completed"
