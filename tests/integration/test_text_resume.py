"""A language model's run stopped mid-epoch and resumed ends as an uninterrupted one (data=text).

The training windows continue exactly: the resumed loader starts at the checkpoint's epoch and
batch, with the epoch's draws from ``(split_seed, epoch)`` (``factory.data.text.windows``).
"""
from __future__ import annotations

import csv
import io

import pytest

from factory import compose
from factory.training.fault_tolerance import EXIT_INTERRUPTED
from factory.training.recipe import run
from tests.integration.helpers import manifest
from tests.integration.test_resume import KILL, history, metrics_of
from tests.unit.data.text.conftest import documents


def overrides(corpus: str) -> list[str]:
    # 8 windows a batch, 48 an epoch: 6 steps per epoch; 15 steps end mid-epoch 2.
    return ["experiment=gpt_tiny", f"data.source.path={corpus}", "data.tokenizer.vocab_size=300", "data.block_size=16",
            "data.batch_size=8", "data.windows_per_epoch=48", "data.eval_windows=8", "data.val_fraction=0.2",
            "data.test_fraction=0.2", "model.net.n_layer=1", "model.net.n_embd=32", "model.net.n_head=2",
            "model.net.dropout=0.1", "trainer.max_steps=15", "logger=csv", KILL, "resume=auto"]


def test_sigterm_mid_epoch_then_resume_ends_as_uninterrupted(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, text in enumerate(documents()):
        (corpus / f"doc{i:02d}.txt").write_text(text)
    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path / "reference"))
    reference = run(compose("train", overrides(str(corpus)))).run_dir

    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path / "resumed"))
    monkeypatch.setenv("FAULT_INJECT", "SIGTERM@step9")  # batch 3 of epoch 1
    with pytest.raises(SystemExit) as stopped:
        run(compose("train", overrides(str(corpus))))
    assert stopped.value.code == EXIT_INTERRUPTED
    monkeypatch.delenv("FAULT_INJECT")
    result = run(compose("train", overrides(str(corpus))))
    assert manifest(result.run_dir)["status"] == "completed"
    resumed, expected = metrics_of(result.run_dir), metrics_of(reference)
    assert resumed.keys() == expected.keys()
    for section in ("val", "test"):
        assert resumed[section] == pytest.approx(expected[section], abs=1e-6, rel=0), section
    assert _untimed(history(result.run_dir)) == _untimed(history(reference))


def _untimed(text: str) -> list[dict]:
    """The metrics history without the measured speeds (train/tokens_per_s), which no rerun repeats."""
    return [{k: v for k, v in row.items() if not k.endswith("per_s")} for row in csv.DictReader(io.StringIO(text))]
