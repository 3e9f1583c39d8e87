"""The run report of a language model, read as a document: ``scripts/report.py report=run_report`` on a tiny
GPT run executes notebooks/lm_report.ipynb (chosen by the run's kind) and the page shows the perplexity
table beside the unigram and bigram, the bars and loss curves, and the seeded samples of the checkpoint."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.integration.helpers import check_reads_as_a_document, run_script, trained_run, visible_text
from tests.integration.test_lm_generate import TINY_LM, corpus

pytestmark = pytest.mark.slow  # a tiny run (~10 s) and a report (~15 s)


def test_language_model_run_report_reads_as_a_document(tmp_path: Path):
    from factory.formatting import number
    from factory.models import load_model

    run_dir = trained_run(tmp_path, [*TINY_LM, f"data.source.path={corpus(tmp_path / 'corpus')}"])
    done = run_script(tmp_path, "report.py", "report=run_report", f"report.parameters.run_dir={run_dir}")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "Input Notebook:  notebooks/lm_report.ipynb" in done.stdout + done.stderr
    [page] = (tmp_path / "reports" / "run_report").glob("*/report.html")
    html = page.read_text()
    check_reads_as_a_document(html, r"completed: val perplexity [\d.]+, [\d.]+x (lower|higher) than the "
                                    r"bigram's [\d.]+ \(unigram [\d.]+\); test [\d.]+", run_dir)
    text = visible_text(html)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for row, values in {"model, val split": (metrics["val"]["val/loss"], metrics["val"]["val/perplexity"]),
                        "bigram (Witten-Bell), val tokens": tuple(metrics["baseline"]["bigram"].values()),
                        "unigram (add-one), val tokens": tuple(metrics["baseline"]["unigram"].values())}.items():
        assert f"{row} {number(values[0])} {number(values[1])}" in text  # the perplexity table, loss then perplexity
    assert html.count("data:image/png;base64,iVBOR") >= 3  # bars and loss curves (one more is the page's style)
    assert "GPT, " in text and " parameters (2 layers, 4 heads, 128 wide)" in text
    # the samples: the notebook's defaults (an empty prompt, seeds 0 and 1), drawn again here
    model = load_model(run_dir)
    samples = [model.generate_text("", max_new_tokens=80, temperature=0.8, top_k=50, seed=seed) for seed in (0, 1)]
    assert any(sample.strip() for sample in samples)
    for sample in samples:
        assert re.sub(r"\s+", " ", sample).strip() in text
    entry = json.loads((tmp_path / "reports" / "index.json").read_text())["runs"][0]
    assert entry["name"] == "run_report" and entry["notebook"] == "notebooks/lm_report.ipynb"
