"""What factory costs on top of PyTorch: training throughput and start-up time.

    python bench/overhead.py                 # full run; rewrites the results in docs/benchmarks.md
    python bench/overhead.py --quick         # a smoke check (fewer epochs and repeats)
    python bench/overhead.py --part startup --no-write
    python bench/overhead.py --override trainer.deterministic=false   # price one config knob

Throughput: two workloads (``throughput.WORKLOADS``: the ``fraud_detection`` experiment, and
its data through the wide MLP, whose steps are large) trained by factory (built as
``factory.training.recipe.run`` builds it), by a bare Lightning ``Trainer.fit`` and by a
hand-written loop over the same tensors, back to back, validation off for all. Start-up: CLI calls that must not load torch, and launch
to the first optimizer step against ``import torch, pytorch_lightning``. docs/benchmarks.md
says what each number means.

Only ratios and same-run baselines mean anything: the machine's load moves both sides.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
MARKER = "<!-- results: written by bench/overhead.py, do not edit below -->"
TRAIN = [sys.executable, "scripts/train.py"]
from throughput import EXPERIMENT, LOOPS, WORKLOADS, throughput  # bench/ is sys.path[0] when run as a script
TARGET_CLI_S, TARGET_ADDED_S = 1.0, 1.5  # seconds; seconds
#: Each workload's target: (ratio, its label, at least). A small network's steps are dominated by
#: Lightning's own per-step work, so there factory is held to bare Lightning; a large step, to the hand loop.
TARGETS = {"fraud_detection": ("factory_vs_lightning", "factory / bare Lightning", 0.97),
           "mlp_wide": ("ratio", "factory / hand", 0.95)}
BUSY_CORES = 0.3  # CPU cores other processes may keep busy before the results are unreliable

# ``python -c CHILD scripts/train.py ...``: runs the script as ``python scripts/train.py ...``
# would, prints ``stamp <time> <label>`` lines, and exits at the first optimizer step. With
# BENCH_PHASES=1 it also stamps the end of each phase of factory.training.recipe.run (imports first).
CHILD = """
import os, runpy, sys, time
from torch.optim.optimizer import register_optimizer_step_post_hook
SEEN = set()
def mark(label):
    if label not in SEEN:  # each phase ends once (setup runs again inside fit)
        SEEN.add(label)
        print(f"stamp {time.time()!r} {label}", flush=True)
def stamp(owner, name, label, before=False):
    inner = getattr(owner, name)
    def wrapped(*a, **k):
        before and mark(label)
        result = inner(*a, **k)
        before or mark(label)
        return result
    setattr(owner, name, wrapped)
if os.environ.get("BENCH_PHASES"):
    import factory.training.components, factory.training.recipe, pytorch_lightning as pl
    from factory.data.datamodule import TabularDataModule
    mark("imports (torch, Lightning, factory)")
    stamp(factory.training.recipe, "run", "Hydra: compose, run directory, validate", before=True)
    stamp(TabularDataModule, "setup", "data: generate, validate, split, preprocess")
    stamp(factory.training.components, "build_trainer", "model, loggers, callbacks, Trainer")
    stamp(pl.Trainer, "_run_sanity_check", "fit set-up (hooks, model summary)", before=True)
    stamp(pl.Trainer, "_run_sanity_check", "sanity validation (2 batches)")
register_optimizer_step_post_hook(lambda *_: (mark("first training step"), os._exit(0)))
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""
BARE = "import time, torch, pytorch_lightning; print(f'stamp {time.time()!r} imported')"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` lowers epochs and repeats."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["all", "throughput", "startup"], default="all")
    p.add_argument("--repeats", type=int, default=5, help="alternating pairs / subprocess runs")
    p.add_argument("--epochs", type=int, default=None, help="default: the experiment's max_epochs")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--workload", dest="workloads", action="append", choices=list(WORKLOADS),
                   help="throughput of this workload only (repeatable; default: all)")
    p.add_argument("--override", action="append", default=[],
                   help="extra config override (network and data ones reach the hand loop too)")
    p.add_argument("--quick", action="store_true", help="2 epochs, 2 repeats")
    p.add_argument("--no-write", action="store_true", help=f"do not update {DOC.relative_to(REPO)}")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.epochs = min(args.repeats, 2), args.epochs or 2
    return args


# --- 2. start-up ----------------------------------------------------------------------

def child_env(tmp: str, threads: int | None) -> dict[str, str]:
    """Runs and wandb files in ``tmp``; optionally a fixed thread count."""
    env = dict(os.environ, FACTORY_ROOT=tmp, WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=tmp)
    env.pop("FACTORY_RUN_ID", None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def wall(argv: list[str], env: dict[str, str], exit_code: int) -> float:
    """Seconds from launch to exit of a subprocess in the repository root."""
    start = time.perf_counter()
    code = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    if code != exit_code:  # a crash is fast too: do not time it
        raise RuntimeError(f"{' '.join(argv[1:])} exited {code}, expected {exit_code}")
    return time.perf_counter() - start


def stamps(env: dict[str, str], code: str, *argv: str) -> list[tuple[str, float]]:
    """Run ``python -c code *argv``; its ``stamp`` lines as (label, seconds since launch)."""
    start = time.time()
    out = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, env=env, capture_output=True,
                         text=True).stdout
    found = [(m.group(2), float(m.group(1)) - start) for m in re.finditer(r"^stamp (\S+) (.+)$", out, re.M)]
    if not found:
        raise RuntimeError(f"no time stamp from {' '.join(argv) or code}:\n{out[-2000:]}")
    return found


def import_times(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """Self time (s) of each module ``python *argv`` imports (``-X importtime``)."""
    err = subprocess.run([sys.executable, "-X", "importtime", *argv], cwd=REPO, env=env, capture_output=True,
                         text=True).stderr
    return {m.group(2).strip(): int(m.group(1)) / 1e6
            for m in re.finditer(r"^import time:\s+(\d+) \|\s+\d+ \|(.+)$", err, re.M)}


def extra_imports(env: dict[str, str], top: int = 8) -> list[tuple[str, float]]:
    """Import seconds, by package, of what the training launch imports and the baseline does not."""
    bare, totals = import_times(["-c", BARE], env), {}
    for module, seconds in import_times(["-c", CHILD, "scripts/train.py", *EXPERIMENT], env).items():
        if module not in bare:
            totals[module.split(".")[0]] = totals.get(module.split(".")[0], 0.0) + seconds
    return sorted(totals.items(), key=lambda kv: -kv[1])[:top]


def startup(args: argparse.Namespace) -> dict:
    """Median wall times of the light CLI calls and of launch-to-first-step."""
    with tempfile.TemporaryDirectory() as tmp:
        env = child_env(tmp, args.threads)
        cli = {"train.py --help": ([*TRAIN, "--help"], 0), "train.py --cfg job": ([*TRAIN, "--cfg", "job"], 0),
               "train.py trainer.max_epochs=abc": ([*TRAIN, "trainer.max_epochs=abc"], 2)}  # bad input: 2
        result = {"cli": {name: (statistics.median(wall(argv, env, code) for _ in range(args.repeats)),
                                 bool({"torch", "pytorch_lightning"} & import_times(argv[1:], env).keys()))
                          for name, (argv, code) in cli.items()}}
        bare, train = [], []
        for repeat in range(args.repeats):
            pair = [(bare, (BARE,)), (train, (CHILD, "scripts/train.py", *EXPERIMENT))]
            for times, argv in (pair if repeat % 2 else pair[::-1]):
                times.append(stamps(env, *argv)[-1][1])
        steps = stamps(dict(env, BENCH_PHASES="1"), CHILD, "scripts/train.py", *EXPERIMENT)
        result.update(bare=statistics.median(bare), train=statistics.median(train), imports=extra_imports(env),
                      phases=[(label, t - (steps[i - 1][1] if i else 0.0)) for i, (label, t) in enumerate(steps)])
    result["added"] = result["train"] - result["bare"]
    return result


# --- report ---------------------------------------------------------------------------

def cores() -> int:
    """CPU cores this process may use, as ``nproc`` counts them."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def busy_cores(seconds: float = 2.0) -> float:
    """Cores kept busy by all processes over ``seconds`` (``/proc/stat``), when we run nothing."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    if not Path("/proc/stat").exists():
        return 0.0
    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return cores() * (1 - (idle1 - idle0) / max(total1 - total0, 1))


def machine() -> str:
    """CPU, cores, versions: one line for the results header."""
    import pytorch_lightning
    import torch

    cpuinfo = Path("/proc/cpuinfo")
    names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M) if cpuinfo.exists() else []
    cpu = names[0] if names else platform.processor() or "unknown CPU"
    return (f"{cpu}, {cores()} cores (nproc); Python {platform.python_version()}, torch {torch.__version__}, "
            f"pytorch-lightning {pytorch_lightning.__version__}")


def table(header: str, rows: list[str]) -> list[str]:
    """Markdown table lines: ``header`` like ``"| a | b |"``, numbers right-aligned after the first."""
    return [header, "|---" + "|---:" * (header.count("|") - 2) + "|", *rows, ""]


def report(tp: list[dict] | None, su: dict | None, busy: tuple[float, float]) -> str:
    """The results section, as Markdown; verdicts are withheld when the machine was busy."""
    # Another busy process on a small machine stalls torch's intra-op threads at every op:
    # both loops slow down, by different amounts. Such numbers only say that it was busy.
    shaky = max(busy) > BUSY_CORES or any(high > 1.25 * low for row in tp or [] for low, high in row["range"].values())

    def verdict(ok: bool, target: str) -> str:
        return f"target {target}: " + ("unreliable, see above" if shaky else "met" if ok else "**missed**")

    lines = [f"## Results, {datetime.datetime.now():%Y-%m-%d %H:%M}", "",
             f"{machine()}. Other processes kept {busy[0]:.1f} cores busy just before, {busy[1]:.1f} just after.",
             ""]
    if shaky:
        lines += [f"**Unreliable run**: other processes kept more than {BUSY_CORES} cores busy, or the repeats "
                  "lie more than 25% apart. Rerun on an idle machine (`--threads 1` is less sensitive).", ""]
    if tp:
        knobs = f"; overrides `{' '.join(tp[0]['overrides'])}`" if tp[0]["overrides"] else ""
        lines += ["### Training throughput (validation off for all three)", "",
                  f"Torch threads: {tp[0]['threads']}{knobs}. Ratios: medians of the per-repeat ratios "
                  "(each repeat ran the three loops back to back).", "",
                  *table("| workload | config | batch | epochs | hand loop's step (ms) | factory / bare Lightning "
                         "| factory / hand | bare Lightning / hand | target |", [throughput_row(row, verdict)
                                                                              for row in tp]),
                  *table("| workload | loop | samples/s, median | min | max |",
                         [f"| {row['workload']} | {name} | {row[name]:,.0f} | {row['range'][name][0]:,.0f} | "
                          f"{row['range'][name][1]:,.0f} |" for row in tp for name in LOOPS])]
    if su:
        cli_rows = [f"| `{name}` | {seconds:.2f} | {'yes' if torch_loaded else 'no'} | "
                    f"{verdict(seconds < TARGET_CLI_S and not torch_loaded, f'< {TARGET_CLI_S:g} s, no torch')} |"
                    for name, (seconds, torch_loaded) in su["cli"].items()]
        lines += ["### Start-up (median wall time)", "", *table("| command | s | loads torch | verdict |", cli_rows),
                  *table("| launch to first optimizer step | s |", [
                      f"| `python -c \"import torch, pytorch_lightning\"` (baseline) | {su['bare']:.2f} |",
                      f"| `train.py {' '.join(EXPERIMENT)}` | {su['train']:.2f} |",
                      f"| added by factory | **{su['added']:.2f}** "
                      f"({verdict(su['added'] < TARGET_ADDED_S, f'< {TARGET_ADDED_S:g} s')}) |"]),
                  "Where one launch spends its time (phases in order, one run):", "",
                  *table("| phase | s |", [f"| {name} | {s:.2f} |" for name, s in su["phases"]]),
                  "Imports the baseline does not make (`-X importtime` self time, by package):", "",
                  *table("| package | s |", [f"| {name} | {s:.2f} |" for name, s in su["imports"]])]
    return "\n".join(lines)


def throughput_row(row: dict, verdict) -> str:
    """One workload's ratios and its target's verdict, as a table row."""
    key, label, least = TARGETS[row["workload"]]
    ratios = [f"**{row[k]:.3f}**" if k == key else f"{row[k]:.3f}"
              for k in ("factory_vs_lightning", "ratio", "lightning_ratio")]
    config = " ".join(WORKLOADS[row["workload"]][0]) or "as it is"
    return (f"| {row['workload']} | `{config}` | {row['batch_size']} | {row['epochs']} | {row['step_ms']:.1f} | "
            f"{' | '.join(ratios)} | {verdict(row[key] >= least, f'{label} >= {least}')} |")


def write_doc(results: str) -> None:
    """Replace everything below the marker in docs/benchmarks.md (create it if missing)."""
    head = DOC.read_text().split(MARKER)[0] if DOC.exists() else "# Benchmarks\n\n"
    DOC.write_text(f"{head.rstrip()}\n\n{MARKER}\n\n{results.rstrip()}\n")


def main(argv: list[str] | None = None) -> None:
    """Measure, print the results, and write them into docs/benchmarks.md."""
    args = parse_args(argv)
    busy_before = busy_cores()
    tp = throughput(args) if args.part in ("all", "throughput") else None
    su = startup(args) if args.part in ("all", "startup") else None
    results = report(tp, su, (busy_before, busy_cores()))
    from rich.console import Console
    from rich.markdown import Markdown

    Console().print(Markdown(results))
    if not args.no_write and not args.override:  # a priced knob is not the baseline result
        write_doc(results)
        print(f"wrote {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
