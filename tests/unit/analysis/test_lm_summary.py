"""What the language-model run report says, from a run record, metrics and a metrics.csv as a run writes them."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from factory.analysis import lm_summary
from factory.analysis.notebook import LoadedRun
from factory.rundir.manifest import RunRecord

METRICS = {"val": {"val/loss": 3.5, "val/perplexity": 33.12}, "test": {"test/loss": 3.52, "test/perplexity": 33.78},
           "baseline": {"unigram": {"loss": 6.38, "perplexity": 591.8}, "bigram": {"loss": 4.097, "perplexity": 60.14}}}


def _run(tmp_path: Path, metrics: dict, status: str = "completed", error: str | None = None) -> LoadedRun:
    record = RunRecord(run_id="2026-12-07_20-54-00_d4b04c", task_name="gpt_small", run_dir=str(tmp_path),
                       status=status, error=error, started_at="2026-12-07T20:54:14.393+00:00",
                       git={"commit": "fbb2140a1409d5d647447f9f7f3b95e807c2b41a", "dirty": False},
                       data={"source": "stdlib", "rows": {"train": 3680625, "val": 200907, "test": 200244}},
                       monitor={"metric": "val/loss", "mode": "min", "best": 3.5})
    config = OmegaConf.create({"model": {"net": {"_target_": "factory.models.GPT", "n_layer": 1, "n_head": 4,
                                                 "n_embd": 128}},
                               "data": {"block_size": 128, "tokenizer": {"vocab_size": 2048}}})
    return LoadedRun(tmp_path, record, config, metrics)


def test_summary_reads_perplexity_against_the_bigram(tmp_path: Path):
    assert lm_summary.summary(_run(tmp_path, METRICS)).splitlines() == [
        "- **completed**: val perplexity **33.12**, 1.82x lower than the bigram's 60.14 (unigram 591.8); test 33.78",
        "- data: stdlib, 4,081,776 tokens (train 3,680,625 / val 200,907 / test 200,244), vocabulary 2,048, block 128",
        "- model: GPT (1 layer, 4 heads, 128 wide)",
        "- ran 2026-12-07 20:54 UTC, commit `fbb2140`",
    ]
    worse = {**METRICS, "val": {"val/loss": 4.5, "val/perplexity": 90.21}}
    assert "1.5x higher than the bigram's 60.14" in lm_summary.headline(_run(tmp_path, worse))


def test_a_failed_run_says_so_and_what_it_recorded(tmp_path: Path):
    run = _run(tmp_path, {}, status="failed", error="RuntimeError: out of memory")
    assert lm_summary.summary(run).splitlines()[:2] == [
        "**This run is failed**: `RuntimeError: out of memory`. The sections below show what it recorded "
        "before it stopped.", ""]
    assert "best val/loss **3.5**" in lm_summary.headline(run)
    assert lm_summary.perplexity_table(run).empty and lm_summary.perplexity_bars(run) is None
    assert lm_summary.loss_curves(run) is None  # no metrics.csv


def test_perplexity_table_rows_and_bars(tmp_path: Path):
    run = _run(tmp_path, METRICS)
    table = lm_summary.perplexity_table(run)
    assert table.to_dict(orient="index") == {
        "model, val split": {"loss": "3.5", "perplexity": "33.12"},
        "model, test split": {"loss": "3.52", "perplexity": "33.78"},
        "bigram (Witten-Bell), val tokens": {"loss": "4.097", "perplexity": "60.14"},
        "unigram (add-one), val tokens": {"loss": "6.38", "perplexity": "591.8"}}
    bars = lm_summary.perplexity_bars(run)
    assert [label.get_text() for label in bars.axes[0].get_yticklabels()] == ["unigram", "bigram", "model"]


def test_loss_curves_keep_the_validations_made_while_training(tmp_path: Path):
    (tmp_path / "csv").mkdir()
    rows = [  # as the CSV logger writes them: train every 2 steps, val each epoch, then the best checkpoint's
        {"epoch": 0, "step": 1, "train/loss": 5.6}, {"epoch": 0, "step": 3, "train/loss": 5.2},
        {"epoch": 0, "step": 3, "val/loss": 5.3}, {"epoch": 1, "step": 5, "train/loss": 4.9},
        {"epoch": 1, "step": 7, "train/loss": 4.7}, {"epoch": 1, "step": 7, "val/loss": 4.8},
        {"epoch": 2, "step": 8, "val/loss": 4.8}, {"epoch": 2, "step": 8, "test/loss": 4.85}]
    pd.DataFrame(rows).to_csv(tmp_path / "csv" / "metrics.csv", index=False)
    figure = lm_summary.loss_curves(_run(tmp_path, METRICS))
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert list(lines["train/loss"].get_xdata()) == [1, 3, 5, 7]
    assert list(lines["val/loss"].get_xdata()) == [3, 7]  # not the validation of the best checkpoint after fit
    assert list(lines["bigram (val)"].get_ydata()) == [4.097, 4.097]


def test_samples_html_keeps_indentation_and_escapes():
    page = lm_summary.samples_html([{"prompt": "def f(<a>):", "seed": 0, "text": "\n    return 1"},
                                    {"prompt": "", "seed": 1, "text": ""}])
    assert "<pre><b>def f(&lt;a&gt;):</b>\n    return 1</pre>" in page
    assert "(a new document)" in page and "(the model ended the document at once)" in page
