"""What the language-model run report (``notebooks/lm_report.ipynb``) says about one run, as values a
notebook displays: the summary, perplexity beside the unigram and bigram baselines (a table and a
bar chart), the loss curves against the step, and samples drawn from the checkpoint.

The baselines are those the run recorded in ``metrics.json`` (``factory.training.ngram``: fitted on
the train tokens, scored on the model's val windows); the model's val perplexity is the run's own.

Example:
    >>> run = factory.load_run(run_dir)
    >>> model, no_model = run_summary.model_or_reason(run)
    >>> display(Markdown(lm_summary.summary(run, model)))
    >>> lm_summary.perplexity_table(run); lm_summary.perplexity_bars(run); lm_summary.loss_curves(run)
    >>> display(HTML(lm_summary.samples_html(lm_summary.samples(model, ["def main("], seed=0))))
"""
from __future__ import annotations

import html
import math
from typing import Any, Sequence

import pandas as pd

from factory.analysis import run_summary
from factory.analysis.figure import Figure
from factory.analysis.notebook import LoadedRun
from factory.formatting import number
from factory.rundir.baselines import baseline_metrics

#: The baselines the report shows, in order, and what each is.
BASELINES = {"bigram": "bigram (Witten-Bell), val tokens", "unigram": "unigram (add-one), val tokens"}


def _value(run: LoadedRun, split: str, name: str) -> float | None:
    return (run.metrics.get(split) or {}).get(f"{split}/{name}")


def headline(run: LoadedRun) -> str:
    """Val perplexity beside the baselines' (markdown), e.g. ``val perplexity **41.3**, 2.9x lower than
    the bigram's 120.4 (unigram 611); test 42.0``; the best val loss for a run that stopped before its test."""
    val = _value(run, "val", "perplexity")
    if val is None:
        best = (run.manifest.monitor or {}).get("best")
        return f"best val/loss **{number(best)}**" if best is not None else "no val/perplexity recorded"
    text = f"val perplexity **{number(val)}**"
    baselines = baseline_metrics(run.metrics)
    bigram = (baselines.get("bigram") or {}).get("perplexity")
    unigram = (baselines.get("unigram") or {}).get("perplexity")
    if bigram is not None:
        ratio = bigram / val
        text += (f", {ratio:.3g}x lower than the bigram's {number(bigram)}" if ratio >= 1
                 else f", {1 / ratio:.3g}x higher than the bigram's {number(bigram)}")
    if unigram is not None:
        text += f" (unigram {number(unigram)})"
    test = _value(run, "test", "perplexity")
    return text + (f"; test {number(test)}" if test is not None else "")


def data_line(run: LoadedRun, model=None) -> str:
    """Source, tokens per split, vocabulary and context: ``stdlib, 1,234,567 tokens (train ... / val ... /
    test ...), vocabulary 4,096, block 256``."""
    data = run.manifest.data or {}
    config = run.config.get("data") or {}
    text = str(data.get("source") or "text")
    tokens = data.get("tokens") or data.get("rows") or {}
    if tokens:
        text += f", {number(sum(tokens.values()))} tokens (" + " / ".join(
            f"{split} {number(n)}" for split, n in tokens.items()) + ")"
    spec = getattr(model, "spec", None) or {}
    vocab = spec.get("vocab_size") or (config.get("tokenizer") or {}).get("vocab_size")
    block = spec.get("block_size") or config.get("block_size")
    if vocab:
        text += f", vocabulary {number(vocab)}"
    if block:
        text += f", block {number(block)}"
    return text


def model_line(run: LoadedRun, model=None) -> str:
    """``GPT, 1,234,567 parameters (4 layers, 4 heads, 128 wide)``, from the config where no model loaded."""
    net = run.config.get("model", {}).get("net", {})
    shape = [f"{net[key]} {word}{'s' if plural and net[key] != 1 else ''}"
             for key, word, plural in (("n_layer", "layer", True), ("n_head", "head", True), ("n_embd", "wide", False))
             if net.get(key) is not None]
    line = run_summary.model_line(run, model)
    return f"{line} ({', '.join(shape)})" if shape else line


def summary(run: LoadedRun, model=None) -> str:
    """The report's opening (markdown): a failed or interrupted run says so first, then a line each for
    status and perplexity, data and model, when and from what commit (and energy, when measured)."""
    record = run.manifest
    lines = run_summary.stopped_banner(record)
    lines += [f"- **{record.status}**: {headline(run)}",
              f"- data: {data_line(run, model)}",
              f"- model: {model_line(run, model)}",
              f"- ran {run_summary.when_line(run)}"]
    if energy := run_summary.energy_line(run):
        lines.append(f"- energy: {energy}")
    return "\n".join(lines)


def perplexity_table(run: LoadedRun) -> pd.DataFrame:
    """One row per model scored: the model on val and test, then each baseline (on the val tokens);
    columns ``loss`` (mean nats per token) and ``perplexity``, as text to 4 significant digits."""
    rows: dict[str, dict[str, str]] = {}
    for split in ("val", "test"):
        loss, perplexity = _value(run, split, "loss"), _value(run, split, "perplexity")
        if loss is not None or perplexity is not None:
            rows[f"model, {split} split"] = {"loss": number(loss), "perplexity": number(perplexity)}
    baselines = baseline_metrics(run.metrics)
    for name, label in BASELINES.items():
        if name in baselines:
            rows[label] = {"loss": number(baselines[name].get("loss")),
                           "perplexity": number(baselines[name].get("perplexity"))}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["loss", "perplexity"])
    return table


def perplexity_bars(run: LoadedRun) -> Figure | None:
    """Val perplexity of the model beside the bigram's and the unigram's, bars from zero (a length reads
    as a ratio); None when the run recorded none of them."""
    baselines = baseline_metrics(run.metrics)
    bars = {"model": _value(run, "val", "perplexity"),
            **{name: (baselines.get(name) or {}).get("perplexity") for name in BASELINES}}
    bars = {name: value for name, value in bars.items() if value is not None and math.isfinite(value)}
    if not bars:
        return None
    fig = Figure(figsize=(6.5, 0.6 + 0.55 * len(bars)), layout="constrained")
    ax = fig.subplots()
    names = list(bars)[::-1]  # the model on top
    ax.barh(names, [bars[n] for n in names], color=["C0" if n == "model" else "C7" for n in names])
    for y, name in enumerate(names):
        ax.annotate(number(bars[name]), (bars[name], y), xytext=(4, 0), textcoords="offset points", va="center")
    ax.set_xlim(0, max(bars.values()) * 1.15)  # room for the longest bar's label
    ax.set(xlabel="val perplexity (lower is better)", title="Perplexity on the val tokens")
    return fig


def loss_curves(run: LoadedRun) -> Figure | None:
    """Train and val loss against the optimizer step (``csv/metrics.csv``), the baselines' val loss as
    dashed lines; None when the run logged no loss."""
    steps = run.steps
    if steps.empty or not {"step", "epoch"} <= set(steps.columns):
        return None
    curves = {}
    for column in ("train/loss", "val/loss"):
        if column in steps.columns:
            logged = steps.loc[steps[column].notna(), ["step", "epoch", column]]
            if column == "val/loss" and "train/loss" in curves:
                # The best checkpoint's validation after fit is logged one epoch on, or at the last step
                # again: keep the validations made while training.
                trained = set(curves["train/loss"]["epoch"].dropna())
                logged = logged[logged["epoch"].isin(trained)].drop_duplicates("step", keep="first")
            if len(logged):
                curves[column] = logged
    if not curves:
        return None
    fig = Figure(figsize=(7.5, 4), layout="constrained")
    ax = fig.subplots()
    for i, (column, logged) in enumerate(curves.items()):
        ax.plot(logged["step"], logged[column], label=column, color=f"C{i}",
                marker="o" if len(logged) < 30 else None, markersize=3)
    for name, values in baseline_metrics(run.metrics).items():
        if values.get("loss") is not None:
            ax.axhline(values["loss"], linestyle="--", linewidth=1, color="C7" if name == "unigram" else "C3",
                       label=f"{name} (val)")
    ax.set(xlabel="step", ylabel="loss (nats per token)", title="Loss curves")
    fig.legend(loc="outside right upper", frameon=False)
    return fig


def samples(model, prompts: Sequence[str] | None = None, per_prompt: int = 2, max_new_tokens: int = 80,
            temperature: float = 0.8, top_k: int | None = 50, seed: int = 0) -> list[dict[str, Any]]:
    """Continuations of each prompt (``None``: one empty prompt, a new document), ``per_prompt`` each,
    drawn with ``seed``, ``seed + 1``, ... (the same every time): ``[{"prompt", "seed", "text"}]``."""
    rows, next_seed = [], seed
    for prompt in list(prompts) if prompts else [""]:
        for _ in range(per_prompt):
            text = model.generate_text(prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                                       top_k=top_k, seed=next_seed)
            rows.append({"prompt": prompt, "seed": next_seed, "text": text})
            next_seed += 1
    return rows


def samples_html(rows: Sequence[dict[str, Any]]) -> str:
    """The samples as an HTML table, each text in a ``<pre>`` (code keeps its indentation), the
    prompt in bold before its continuation."""
    cells = []
    for row in rows:
        prompt = html.escape(row["prompt"])
        text = html.escape(row["text"]) or "<em>(the model ended the document at once)</em>"
        label = html.escape(repr(row["prompt"])) if row["prompt"] else "(a new document)"
        cells.append(f"<tr><td>{label}</td><td>{row['seed']}</td>"
                     f"<td><pre><b>{prompt}</b>{text}</pre></td></tr>")
    return ("<table><thead><tr><th>prompt</th><th>seed</th><th>sample (prompt in bold)</th></tr></thead>"
            f"<tbody>{''.join(cells)}</tbody></table>")
