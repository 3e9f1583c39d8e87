"""Markdown for ``bench/sharding.py``'s results, and the ``## Sharding`` section of docs/benchmarks.md.

All numbers are per rank, in decimal GB, from the rank with the highest peak. The probe's
tensor census (``bench/memory_probe.py``) is taken right after the first optimizer step.
"""
from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BEGIN = "<!-- sharding: written by bench/sharding.py, do not edit by hand -->"
END = "<!-- /sharding -->"
OVERHEAD_MARKER = "<!-- results: written by bench/overhead.py"
GOAL = 0.6  # ZeRO-3 at 2 ranks: at most this share of DDP's peak per rank
#: census owner (memory_probe.census) -> column of the "where it goes" table
CATEGORIES = {"module.params": "params", "module.grads": "grads", "zero.param_id_to_grad_partition": "grads",
              "zero.averaged_gradients": "grads", "zero.grads_in_partition": "grads",
              "optimizer.state": "optimizer", "zero.single_partition_of_fp32_groups": "fp32 copy",
              "zero.fp32_partitioned_groups_flat": "fp32 copy", "zero.ipg_buckets": "buckets"}
COLUMNS = ["params", "grads", "optimizer", "fp32 copy", "buckets", "other"]


def summary(run: dict) -> dict | None:
    """The worst rank's numbers (GB) of one run; ``None`` when it failed."""
    if run.get("error"):
        return None
    worst = max(run["per_rank"], key=lambda r: max(m["peak"] for m in r["milestones"].values()))
    m = {k: {"rss": v["rss"] / 1e3, "peak": v["peak"] / 1e3} for k, v in worst["milestones"].items()}
    peak_phase = max(m, key=lambda k: m[k]["peak"])
    states = _by_column(worst["census"].get("step", {}))
    during = _by_column(worst["census"].get("backward", {}))  # gradients and buckets live here
    steps = worst["step_s"][1:] or worst["step_s"]  # the first step builds Adam's states
    samples = worst["batch_size"] * worst["world_size"] * len(steps)
    untracked = m["step"]["rss"] - m["setup"]["rss"] - sum(states.values())  # C++ buffers, allocator
    return {"peak": m[peak_phase]["peak"], "peak_phase": peak_phase, "baseline": m["setup"]["rss"],
            "milestones": m, "states": states, "backward": during, "untracked": untracked,
            "samples_s": samples / sum(steps), "step_s": sum(steps) / len(steps)}


def _by_column(census: dict) -> dict:
    """A census (owner -> MB) summed into ``COLUMNS`` (GB)."""
    out = dict.fromkeys(COLUMNS, 0.0)
    for owner, mb in census.items():
        if isinstance(mb, (int, float)):  # "= shared (...)": counted under an earlier owner
            out[CATEGORIES.get(owner, "other")] += mb / 1e3
    return out


def _find(saved: dict, strategy: str, ranks: int) -> dict | None:
    run = next((r for r in saved["runs"] if r["strategy"] == strategy and r["ranks"] == ranks), None)
    return summary(run) if run else None


def _planned(run: dict) -> float:
    return run["planned"]["total"] / 1e9


def main_table(saved: dict) -> list[str]:
    lines = ["| strategy | ranks | peak RSS per rank | vs ddp | peak in | planned (planner) | planned + baseline "
             "| samples/s | s/step |", "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for run in saved["runs"]:
        s, ddp = summary(run), _find(saved, "ddp", run["ranks"])
        if s is None:
            lines.append(f"| {run['strategy']} | {run['ranks']} | failed: {run['error'][:80]} | | | | | | |")
            continue
        ratio = f"{s['peak'] / ddp['peak']:.2f}" if ddp else "-"
        lines.append(f"| {run['strategy']} | {run['ranks']} | **{s['peak']:.2f}** | {ratio} | {s['peak_phase']} | "
                     f"{_planned(run):.2f} | {_planned(run) + s['baseline']:.2f} | {s['samples_s']:.1f} | "
                     f"{s['step_s']:.1f} |")
    return lines


def where_table(saved: dict) -> list[str]:
    lines = ["| strategy | ranks | baseline | params | grads | optimizer | fp32 copy | buckets | other tensors "
             "| not in tensors | RSS after step 1 | peak |", "|---|---:|" + "---:|" * 10]
    for run in saved["runs"]:
        s = summary(run)
        if s:
            st, bw = s["states"], s["backward"]
            cells = [f"{s['baseline']:.2f}", f"{st['params']:.2f}", f"{st['grads']:.2f} / {bw['grads']:.2f}",
                     f"{st['optimizer']:.2f}", f"{st['fp32 copy']:.2f}", f"{st['buckets']:.2f} / {bw['buckets']:.2f}",
                     f"{st['other']:.2f}", f"{s['untracked']:.2f}", f"{s['milestones']['step']['rss']:.2f}",
                     f"**{s['peak']:.2f}**"]
            lines.append(f"| {run['strategy']} | {run['ranks']} | " + " | ".join(cells) + " |")
    return lines


def growth_table(saved: dict) -> list[str]:
    names = ["model", "engine", "forward", "backward", "step", "steady"]
    lines = ["| strategy | ranks | baseline | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * 7]
    for run in saved["runs"]:
        s = summary(run)
        if s:
            m, previous, cells = s["milestones"], s["baseline"], []
            for name in names:
                cells.append(f"{m[name]['rss'] - previous:+.2f} ({m[name]['peak']:.2f})")
                previous = m[name]["rss"]
            lines.append(f"| {run['strategy']} | {run['ranks']} | {s['baseline']:.2f} | " + " | ".join(cells) + " |")
    return lines


def verdict(saved: dict) -> list[str]:
    """Plain sentences computed from this run: the goal, and what 4 ranks change."""
    out = []
    for ranks in sorted({r["ranks"] for r in saved["runs"]}):
        z3, ddp = _find(saved, "deepspeed_zero3", ranks), _find(saved, "ddp", ranks)
        if z3 and ddp:
            ratio = z3["peak"] / ddp["peak"]
            goal = (f" Goal (at most {GOAL} of DDP at 2 ranks): **{'met' if ratio <= GOAL else 'missed'}**."
                    if ranks == 2 else "")
            out.append(f"- {ranks} ranks: ZeRO-3 peaks at {z3['peak']:.2f} GB per rank, {ratio:.2f} x DDP's "
                       f"{ddp['peak']:.2f} GB.{goal} Of that, {z3['baseline']:.2f} GB is the process baseline "
                       f"that no strategy shards.")
    return out


def render(saved: dict) -> str:
    """The Sharding section: settings, the tables, conclusions."""
    n_params = next((r["planned"]["n_params"] for r in saved["runs"]), 0)
    knobs = f" Extra overrides: `{' '.join(saved['overrides'])}`." if saved["overrides"] else ""
    return "\n".join([
        "## Sharding", "",
        "What ZeRO's sharding saves here, per process. `python bench/sharding.py` reruns it and rewrites this "
        "section (`--ranks 2 --strategies ddp deepspeed_zero3` for a part; `--override` prices a knob without "
        "writing).", "",
        f"Run {saved['date']} on {saved['machine']}. Load average {saved['load'][0]:.1f} before, "
        f"{saved['load'][-1]:.1f} after (other jobs shared the machine: step times are rough).", "",
        f"`scripts/train.py model=mlp_wide model.net.width=4096 model.net.depth=10` ({n_params:,} parameters, "
        f"fp32, AdamW), `trainer.accelerator=cpu`, `data.batch_size={saved['batch_size']}` rows per rank, "
        f"`trainer.max_steps={saved['steps']}`, `data.source.rows=20000`, no validation, test or checkpoint; "
        f"each strategy with its `conf/strategy` preset.{knobs} 4 ranks oversubscribe the 2 cores: their "
        "samples/s only say that.", "",
        "### Peak resident memory per rank (GB)", "",
        *main_table(saved), "",
        "peak RSS: the highest `VmHWM` of any rank over the run. planned: `make_plan` for the same config, per "
        "device, which leaves the process baseline to `plan.headroom`; planned + baseline adds the measured one. "
        "samples/s: all ranks, steps after the first.", "",
        *verdict(saved), "",
        "### Where it goes (GB per rank, after the first optimizer step)", "",
        *where_table(saved), "",
        "baseline: RSS after imports, data, process group and DeepSpeed's comm op, before the model is built. "
        "params ... other tensors: live tensors after the first step by owner, each storage counted once "
        "(`bench/memory_probe.py`); fp32 copy: the fp32 partition ZeRO's optimizer steps when it is not the "
        "parameters' own storage. not in tensors: RSS after step 1 minus the baseline and those tensors: "
        "buffers held in C++ (DDP's gradient buckets, 4 bytes per parameter), gradients not yet released, and "
        "freed activations that glibc keeps for reuse. grads, buckets: after step 1 / right after the first "
        "backward, when they are alive (ZeRO frees them in the step). peak: the highest point, "
        "reached in transients that neither snapshot shows.", "",
        "### Growth by milestone (GB per rank: RSS added since the previous milestone, and the phase's peak)", "",
        *growth_table(saved), "",
        "model: `configure_model` (under ZeRO-3 inside `deepspeed.zero.Init`: each rank allocates only its "
        "shard). engine: DDP's reducer or DeepSpeed's engine and flat buffers. forward, backward, step: the "
        "first training step (Adam creates its moments at the first step). steady: the remaining steps.",
    ])


def write_section(text: str) -> None:
    """Replace this section in docs/benchmarks.md (create the file if missing).

    ``bench/overhead.py`` rewrites everything below its own marker, so the section goes above it.
    """
    block = f"{BEGIN}\n{text.rstrip()}\n{END}\n"
    if not DOC.exists():
        DOC.write_text(f"# Benchmarks\n\nMeasurements on this machine; each section says how to rerun it.\n\n{block}")
        return
    doc = DOC.read_text()
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        doc = head + block + (f"\n{tail}" if tail else "")
    elif OVERHEAD_MARKER in doc:
        head, rest = doc.split(OVERHEAD_MARKER, 1)
        doc = f"{head.rstrip()}\n\n{block}\n{OVERHEAD_MARKER}{rest}"
    else:
        doc = f"{doc.rstrip()}\n\n{block}"
    DOC.write_text(doc)
