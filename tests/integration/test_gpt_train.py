"""experiment=gpt_tiny end to end on a small corpus: a run, its records, its model; ZeRO-3 resume on 2 ranks."""
from __future__ import annotations

import csv
import io
import math
import signal
from pathlib import Path

import pytest

import factory
from factory.data.text.tokenizer import tokenizer_hash
from factory.errors import ConfigError
from factory.training.fault_tolerance import EXIT_INTERRUPTED
from tests.integration.helpers import failed_run, manifest, run_dirs
from tests.integration.test_resume import KILL, launch, metrics_of

# 2 layers, 64 wide, vocabulary 512, block 32: ~0.1M parameters; 160 windows of 16 per epoch (10 steps on one
# process, 5 per rank on two).
SMALL = ["logger=csv", "model.net.n_layer=2", "model.net.n_embd=64", "data.tokenizer.vocab_size=512",
         "data.block_size=32", "data.windows_per_epoch=160", "data.eval_windows=32", "data.val_fraction=0.2",
         "data.test_fraction=0.2"]


def corpus(root: Path) -> Path:
    """Five documents: the json package's sources (48 kB), fixed for a Python version."""
    import json as json_package

    directory = root / "corpus"
    directory.mkdir()
    for source in sorted(Path(json_package.__file__).parent.glob("*.py")):
        (directory / f"{source.stem}.txt").write_text(source.read_text())
    return directory


def overrides(root: Path, *more: str) -> list[str]:
    return ["experiment=gpt_tiny", f"data.source.path={corpus(root)}", *SMALL, *more]


def test_gpt_tiny_trains_records_and_generates(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path))
    result = factory.train(factory.compose("train", overrides(tmp_path, "trainer.max_epochs=2")))
    assert result.status == "completed"
    record = manifest(result.run_dir)
    tokenizer = (result.run_dir / "tokenizer.json").read_text()
    assert record["data"]["tokenizer_hash"] == tokenizer_hash(tokenizer)
    assert record["profile"] is None  # no tabular reference profile for a language model

    val, test = result.metrics["val"], result.metrics["test"]
    assert val["val/perplexity"] == pytest.approx(math.exp(val["val/loss"]), rel=1e-5)
    assert test["test/perplexity"] == pytest.approx(math.exp(test["test/loss"]), rel=1e-5)
    assert val["val/loss"] < math.log(512)  # it learned something in 20 steps
    rows = list(csv.DictReader(io.StringIO((result.run_dir / "csv" / "metrics.csv").read_text())))
    assert [float(r["train/tokens_per_s"]) > 0 for r in rows if r.get("train/tokens_per_s")] == [True, True]

    model = result.load_model()
    assert isinstance(model, factory.models.LanguageModel) and model.tokenizer_json == tokenizer
    sample = model.generate_text("import ", max_new_tokens=12, seed=3)
    assert sample and sample == model.generate_text("import ", max_new_tokens=12, seed=3)


def test_a_tabular_baseline_is_refused_for_a_language_model(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path))
    failed_run(tmp_path, overrides(tmp_path, "baseline=[hist_gradient_boosting]"), ConfigError,
               r"^baseline: \[hist_gradient_boosting\] is for tabular data; .* set baseline=null$")


def assert_same_metrics(resumed: dict, reference: dict) -> None:
    """val and test to 1e-6; the n-gram baselines (``{name: {loss, perplexity}}``) fitted on the same tokens: equal."""
    assert resumed.keys() == reference.keys()
    for section in ("val", "test"):
        assert resumed[section] == pytest.approx(reference[section], abs=1e-6, rel=0), section
    assert resumed.get("baseline") == reference.get("baseline")


def history_without_throughput(run_dir: Path) -> list[dict]:
    """The metrics history less ``train/tokens_per_s``: a rate of wall-clock time, never the same twice."""
    rows = csv.DictReader(io.StringIO((run_dir / "csv" / "metrics.csv").read_text()))
    return [{k: v for k, v in row.items() if k != "train/tokens_per_s"} for row in rows]


@pytest.mark.slow
def test_zero3_on_two_ranks_resumes_exactly_after_kill_9_and_sigterm(tmp_path):
    """Killed after epoch 0 (every rank), then SIGTERM inside epoch 1: the third launch ends where an
    uninterrupted run does (the windows, the optimizer, the schedule and the running loss all resume)."""
    ref_root, root = tmp_path / "reference", tmp_path / "resumed"
    ref_root.mkdir(), root.mkdir()
    config = overrides(tmp_path, "strategy=deepspeed_zero3", "trainer.accelerator=cpu", "trainer.devices=2",
                       "trainer.max_epochs=3", KILL, "resume=auto")
    done = launch(ref_root, config, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]

    killed = launch(root, config, fault="SIGKILL@epoch0", timeout=900)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    stopped = launch(root, config, fault="SIGTERM@step7", timeout=900)  # inside epoch 1 (steps 5-9)
    assert stopped.returncode == EXIT_INTERRUPTED, stopped.stderr[-3000:]
    finished = launch(root, config, timeout=900)
    assert finished.returncode == 0, finished.stderr[-3000:]

    (run_dir,), (ref_dir,) = run_dirs(root), run_dirs(ref_root)
    record = manifest(run_dir)
    assert record["status"] == "completed" and record["attempt"] == 3
    assert record["strategy"] == {"name": "deepspeed_zero", "world_size": 2}
    assert record["checkpoint_format"] == "sharded"
    assert_same_metrics(metrics_of(run_dir), metrics_of(ref_dir))
    assert history_without_throughput(run_dir) == history_without_throughput(ref_dir)
    assert record["data"] == manifest(ref_dir)["data"]  # the same corpus, split and tokenizer


@pytest.mark.parametrize("kind", ["tabular model, text data", "language model, tabular data"])
def test_a_model_and_data_of_different_kinds_are_refused(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path))
    if kind.startswith("tabular"):  # model: tabular_mlp, train.yaml's default
        config = ["data=text", f"data.source.path={corpus(tmp_path)}", "data.tokenizer.vocab_size=512",
                  "data.block_size=32", "data.val_fraction=0.2", "data.test_fraction=0.2", "logger=csv"]
        message = r"^model: this model is for tables; text data \(data=text\) needs model=gpt$"
    else:
        config = ["data=breast_cancer", "model=gpt", "logger=csv"]
        message = r"^model: a language model trains on text \(data=text\); this data's task is 'binary'$"
    failed_run(tmp_path, config, ConfigError, message)


def test_sigterm_mid_epoch_then_resume_auto_ends_as_uninterrupted(tmp_path, monkeypatch):
    """One process, in this one: the resumed epoch goes on from the batch after the last trained one
    (the schedule's total must not build the train loader before the position is restored)."""
    config = overrides(tmp_path, "trainer.max_epochs=2", KILL, "resume=auto")
    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path / "reference"))
    monkeypatch.delenv("FAULT_INJECT", raising=False)
    reference = factory.train(factory.compose("train", config)).run_dir

    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path / "resumed"))
    monkeypatch.setenv("FAULT_INJECT", "SIGTERM@step13")  # inside epoch 1 (steps 10-19)
    with pytest.raises(SystemExit) as stopped:
        factory.train(factory.compose("train", config))
    assert stopped.value.code == EXIT_INTERRUPTED
    monkeypatch.delenv("FAULT_INJECT")
    result = factory.train(factory.compose("train", config))
    assert manifest(result.run_dir)["attempt"] == 2
    assert_same_metrics(metrics_of(result.run_dir), metrics_of(reference))
    assert history_without_throughput(result.run_dir) == history_without_throughput(reference)
