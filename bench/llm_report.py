"""The "Language models" section of docs/benchmarks.md from ``bench/llm.py``'s results."""
from __future__ import annotations

import os
from pathlib import Path

HEADING = "## Language models"
BEGIN = "<!-- llm: written by bench/llm.py, do not edit by hand -->"
END = "<!-- /llm -->"
GB = 1e9


def machine() -> str:
    """CPU, cores, versions: one line for the results header."""
    import deepspeed
    import pytorch_lightning
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    return (f"{cpu}, {os.cpu_count()} cores; torch {torch.__version__}, pytorch-lightning "
            f"{pytorch_lightning.__version__}, deepspeed {deepspeed.__version__}")


def render(saved: dict) -> str:
    """Markdown tables of every part that ran, each with its target and whether it was met."""
    from tabular import commit

    load = saved.get("load", [0, 0])
    lines = [f"{saved['date']}, commit {saved.get('commit') or commit()}, {saved['machine']}; `{saved['command']}` "
             f"({saved.get('wall_s', '?')} s). Load average {load[0]:.1f} before, {load[-1]:.1f} after"
             + (" (**busy machine: timings are noisy**)." if max(load) > 2.5 else "."), ""]
    if "quality" in saved:
        lines += _quality(saved["quality"])
    if "throughput" in saved:
        lines += _throughput(saved["throughput"], saved.get("threads", "?"))
    if "memory" in saved:
        lines += _memory(saved["memory"])
    return "\n".join(lines)


def _quality(q: dict) -> list[str]:
    if "error" in q:
        return ["### Quality", "", f"Failed after {q['wall_s']:.0f} s: {q['error']}", ""]
    model, uni, bi, char = q["model"], q["baselines"]["unigram"], q["baselines"]["bigram"], q["char"]
    ratio = bi["perplexity"] / model["perplexity"]
    lines = ["### Quality", "",
             f"`scripts/train.py {' '.join(q['overrides'])}` ({q['parameters']:,} parameters, BPE vocabulary "
             f"{q['vocab_size']:,}, block {q['block_size']}) trained in {q['wall_s']:.0f} s of wall time "
             f"(the whole process); its best checkpoint scored on all {model['tokens']:,} val tokens. Unigram "
             "(add-one) and bigram (Witten-Bell) fitted on the same "
             f"{q['split_tokens']['train']:,} train tokens (`factory.training.ngram`).", "",
             "| model | val loss (nats/token) | val perplexity |", "|---|---:|---:|",
             f"| factory `gpt` | {model['loss']:.3f} | **{model['perplexity']:.1f}** |",
             f"| bigram | {bi['loss']:.3f} | {bi['perplexity']:.1f} |",
             f"| unigram | {uni['loss']:.3f} | {uni['perplexity']:.1f} |", "",
             f"Bigram / model perplexity: **{ratio:.2f}x** (target >= 2: "
             f"{'met' if ratio >= 2 else 'not met'}).", ""]
    if q.get("run_val_perplexity"):
        lines += [f"The run's own `val/perplexity` (its {q.get('eval_windows', 256)} fixed val windows): "
                  f"{q['run_val_perplexity']:.1f}.", ""]
    lines += [f"External anchor, **character level** (losses per character, not per token): nanoGPT's "
              f"shakespeare_char CPU recipe (4 layers, 4 heads, 128 wide, block 64, batch 12, dropout 0, "
              f"{char['iters']} iterations; hand-written in `bench/llm_hand.py`, {char['parameters']:,} parameters, "
              f"{char['vocab_size']} characters) on the same documents and split: val loss "
              f"**{char['val_loss']:.3f}** nats/char (train {char['train_loss']:.3f}), in {char['train_s']:.0f} s. "
              "(nanoGPT's README reports ~1.88 on Shakespeare with these settings.)", ""]
    return lines


def _throughput(rows: list[dict], threads: int | str = "?") -> list[str]:
    lines = ["### Throughput", "",
             "Tokens/s of training steps after warm-up (validation off, `callbacks=none`), factory's `gpt` against "
             "nanoGPT's loop around the same `factory.models.GPT` and batches; ratio: median of per-repeat ratios "
             f"(each repeat ran both back to back). 1 rank: in this process, {threads} torch thread(s). 2 ranks: one "
             "thread each; the hand loop is torch DDP (gloo), spawned, for ZeRO-3 too.", "",
             "| strategy | ranks | factory tok/s | hand tok/s | factory / hand | target >= 0.95 |",
             "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        if r["ratio"] is None:
            lines.append(f"| {r['strategy']} | {r['ranks']} | - | - | - | failed: {'; '.join(r['errors'])[:200]} |")
            continue
        lines.append(f"| {r['strategy']} | {r['ranks']} | {r['factory']:,.0f} | {r['hand']:,.0f} | "
                     f"**{r['ratio']:.3f}** | {'met' if r['ratio'] >= 0.95 else 'not met'} |")
    return [*lines, ""]


def _memory(rows: list[dict]) -> list[str]:
    first = next((r for r in rows if "error" not in r), rows[0])
    lines = ["### Memory", "",
             f"Peak RSS per rank (`VmHWM`, the larger rank) of a {first['parameters']:,}-parameter GPT, batch "
             f"{first['batch_size']} x {first['block_size']} tokens, vocabulary {first['vocab_size']:,}, fp32, "
             "2 ranks, against `make_plan` for the same config plus the process's RSS before the model "
             "(interpreter, torch, Lightning, DeepSpeed, data), which the plan leaves to its headroom.", "",
             "| strategy | measured GB | planned GB | + baseline GB | measured / (planned + baseline) | "
             "target within 15% |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['strategy']} | - | {r['planned_gb']:.2f} | - | - | failed: {r['error'][:200]} |")
            continue
        lines.append(f"| {r['strategy']} | {r['peak_gb']:.2f} | {r['planned_gb']:.2f} | {r['baseline_gb']:.2f} | "
                     f"**{r['ratio']:.3f}** | {'met' if abs(r['ratio'] - 1) <= 0.15 else 'not met'} |")
    return [*lines, ""]


def write(text: str) -> None:
    """Replace the marked results under ``## Language models`` in docs/benchmarks.md."""
    from tabular import write_section

    write_section(text, HEADING, BEGIN, END)
