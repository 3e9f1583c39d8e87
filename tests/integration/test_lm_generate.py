"""A language model's run end to end after training: its n-gram baselines in metrics.json (recomputed
from the run's own token files), scripts/generate.py (seeded samples repeat; bad input one line),
and scripts/evaluate.py on its own test split.

One tiny GPT (``experiment=gpt_tiny``, a few steps on a few standard-library sources) is trained
once for the module.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.integration.helpers import run_script, trained_run

TINY_LM = ["experiment=gpt_tiny", "logger=csv", "trainer.max_steps=-1", "trainer.max_epochs=2",
           "data.tokenizer.vocab_size=300", "data.block_size=32", "data.batch_size=8", "data.windows_per_epoch=40",
           "model.net.n_layer=2"]


def corpus(directory: Path) -> Path:
    """A few hundred lines of real text: some standard library modules' sources."""
    import inspect
    import shlex
    import textwrap

    directory.mkdir()
    for module in (json, textwrap, shlex):
        (directory / f"{module.__name__}.txt").write_text(inspect.getsource(module))
    return directory


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lm")
    return root, trained_run(root, [*TINY_LM, f"data.source.path={corpus(root / 'corpus')}"])


def test_run_records_unigram_and_bigram_on_the_models_val_windows(lm):
    import numpy as np

    from factory.config.instantiate import build
    from factory.rundir.catalog import read_config
    from factory.training.ngram import fit_bigram, fit_unigram

    root, run_dir = lm
    metrics = json.loads((run_dir / "metrics.json").read_text())
    baselines = metrics["baseline"]
    assert set(baselines) == {"unigram", "bigram"}
    for values in baselines.values():
        assert values["perplexity"] == pytest.approx(2.718281828 ** values["loss"], rel=1e-6)
    assert 1 < baselines["bigram"]["perplexity"] < baselines["unigram"]["perplexity"] < 300  # vocabulary 300
    # the run's own split and token files, read again: the same numbers
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACTORY_ROOT", str(root))
        datamodule = build(read_config(run_dir).data, "data")
        datamodule.setup("fit")
    # the very (x, y) pairs the model's val/loss is measured on, from its val loader: each target y given x
    pairs = [(x.flatten().numpy(), y.flatten().numpy()) for x, y in datamodule.val_dataloader()]
    previous, targets = (np.concatenate(side) for side in zip(*pairs))
    vocab, train = datamodule.input_spec.vocab_size, datamodule.tokens("train")
    bigram = -np.log(fit_bigram(train, vocab).probabilities(previous, targets)).mean()
    unigram = -np.log(fit_unigram(train, vocab)[targets]).mean()
    assert bigram == pytest.approx(baselines["bigram"]["loss"], rel=1e-9)
    assert unigram == pytest.approx(baselines["unigram"]["loss"], rel=1e-9)


def test_seeded_samples_repeat_and_sample_i_uses_seed_plus_i(lm):
    from factory.models import load_model

    root, run_dir = lm
    two = run_script(root, "generate.py", f"model={run_dir}", "prompt=def f(a, b):", "max_new_tokens=12",
                     "seed=7", "num_samples=2", "top_k=20", "temperature=0.9")
    assert two.returncode == 0, two.stderr[-3000:]
    assert "seed" not in two.stderr  # a given seed is not announced
    blocks = re.split(r"^--- sample \d \(seed (\d+)\) ---\n", two.stdout, flags=re.MULTILINE)[1:]
    assert blocks[0::2] == ["7", "8"]
    # another process, the same seeds: the same text (prompt first, as printed)
    model = load_model(run_dir)
    assert blocks[1::2] == ["def f(a, b):" + model.generate_text("def f(a, b):", max_new_tokens=12, top_k=20,
                                                                 temperature=0.9, seed=seed) + "\n"
                            for seed in (7, 8)]
    assert blocks[1] != blocks[3]


def test_unseeded_samples_name_their_seed(lm, capsys):
    from factory.cli import set_model
    from factory.config import compose
    from factory.models import load_model
    from factory.serving.samples import generate, show

    root, run_dir = lm
    cfg = compose("generate", ["max_new_tokens=8"], check=False)
    set_model(cfg, str(run_dir / "checkpoints" / "best.ckpt"))  # a checkpoint file, as model= gives it
    show(generate(cfg))
    out, err = capsys.readouterr()
    drawn = int(re.fullmatch(r"seed (\d+) \(pass seed=\1 to draw these samples again\)\n", err).group(1))
    assert out == load_model(run_dir).generate_text("", max_new_tokens=8, seed=drawn) + "\n"


@pytest.mark.parametrize("override, message", [
    ("temperature=-0.5", "temperature: must be >= 0, got -0.5"),
    ("top_k=0", "top_k: must be >= 1, got 0"),
    ("max_new_tokens=0", "max_new_tokens: must be >= 1, got 0"),
])
def test_bad_sampling_values_are_one_line(lm, override, message):
    root, run_dir = lm
    done = run_script(root, "generate.py", f"model={run_dir}", override)
    assert done.returncode == 2 and done.stderr == f"error: {message}\n" and done.stdout == ""


def test_unknown_model_and_tabular_run_are_one_line(lm):
    from factory.errors import ConfigError
    from factory.serving.samples import load_language_model

    root, _ = lm
    unknown = run_script(root, "generate.py", "model=no_such_run")
    assert unknown.returncode == 2 and len(unknown.stderr.splitlines()) == 1
    assert unknown.stderr.startswith("error: model: 'no_such_run' is no run directory or checkpoint, no run id under")
    tabular = trained_run(root)  # experiment=diagnosis
    done = run_script(root, "generate.py", f"model={tabular}", "prompt=hello")  # refused before torch loads
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"error: model: {tabular} is a run of SupervisedModel, not a language model: generate "
                           "samples text from a language model's run, checkpoint or registered version (model=gpt, "
                           "e.g. experiment=gpt_small)\n")
    checkpoint = tabular / "checkpoints" / "best.ckpt"
    with pytest.raises(ConfigError, match=f"^model: {re.escape(str(checkpoint))} is a binary model, not a language"):
        load_language_model(str(checkpoint))


def test_evaluate_tests_on_the_runs_own_split(lm):
    from factory.config import compose
    from factory.errors import ConfigError
    from factory.training.recipe import evaluate

    root, run_dir = lm
    metrics = json.loads((run_dir / "metrics.json").read_text())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACTORY_ROOT", str(root))
        tested = evaluate(compose("evaluate", [f"ckpt_path={run_dir}"]))
        assert tested["test/perplexity"] == pytest.approx(metrics["test"]["test/perplexity"], rel=1e-6)
        too_long = compose("evaluate", [f"ckpt_path={run_dir}", "data=text", f"data.source.path={root / 'corpus'}",
                                        "data.block_size=64"])
        with pytest.raises(ConfigError, match=re.escape(
                "data.block_size: 64 tokens is longer than the model's context (32, its training block_size): "
                "pass data.block_size=32 or less")):
            evaluate(too_long)


def test_registered_versions_by_name_and_stage(lm, tmp_path):
    from factory import registry
    from factory.errors import ConfigError
    from factory.models import load_model
    from factory.serving.samples import load_language_model

    root, run_dir = lm
    reg = tmp_path / "registry"
    version = registry.register(run_dir, registry=reg)
    registry.promote(version.name, version.version, "production", reg)
    loaded = load_language_model(f"{version.name}@production", str(reg))
    assert loaded.generate_text("def ", max_new_tokens=10, seed=3) == \
        load_model(run_dir).generate_text("def ", max_new_tokens=10, seed=3)
    tabular = registry.register(trained_run(tmp_path), registry=reg)
    with pytest.raises(ConfigError, match=f"^model: {tabular.name}@1 is a registered tabular model, not a language"):
        load_language_model(f"{tabular.name}@1", str(reg))
