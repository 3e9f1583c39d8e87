"""What recording energy costs a training run: ``energy.track=true`` against ``false``, back to back.

    python bench/energy.py                    # 5 pairs of fraud_detection runs; a markdown table
    python bench/energy.py --repeats 3 --override trainer.max_epochs=5

Each repetition runs ``scripts/train.py experiment=fraud_detection logger=csv`` twice, once per
setting, in alternating order (the machine's load drifts; alternating spreads it over both),
each in a fresh ``FACTORY_ROOT``. Measured: the process's wall time, the run's own
``duration_s`` (``run.json``: from the run's start to its end, where the tracker lives), and the
CPU time of the whole process tree (tracker's process included), which a busy machine moves least.
The overhead is the median of the paired differences, against the median run without
tracking. The load average is printed beside it: on a busy machine the spread is wider than the
overhead, and only an idle machine gives a figure to publish.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(REPO / "scripts" / "train.py"), "experiment=fraud_detection", "logger=csv"]
TARGET = 0.02  # of a fraud_detection run


def train_once(track: bool, overrides: list[str]) -> dict:
    """One run in a fresh root: wall seconds, run.json's duration_s and energy."""
    with tempfile.TemporaryDirectory(prefix="bench-energy-") as root:
        env = {**os.environ, "FACTORY_ROOT": root, "WANDB_MODE": "offline"}
        cpu_before = _children_cpu()
        start = time.perf_counter()
        done = subprocess.run([*TRAIN, f"energy.track={str(track).lower()}", *overrides], cwd=root, env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
        cpu = _children_cpu() - cpu_before
        if done.returncode != 0:
            sys.exit(f"train.py failed ({done.returncode}):\n{done.stderr[-2000:]}")
        (manifest,) = Path(root).rglob("run.json")
        record = json.loads(manifest.read_text())
    return {"wall_s": wall, "run_s": record["duration_s"], "cpu_s": cpu, "energy": record.get("energy")}


def _children_cpu() -> float:
    """User + system seconds of every finished child process (and theirs, once waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(repeats: int, overrides: list[str]) -> dict:
    pairs = []
    load_before = os.getloadavg()
    for i in range(repeats):
        order = (True, False) if i % 2 == 0 else (False, True)
        result = {track: train_once(track, overrides) for track in order}
        pairs.append(result)
        on, off = result[True], result[False]
        print(f"pair {i + 1}/{repeats}: on {on['wall_s']:.2f} s (run {on['run_s']:.2f}, cpu {on['cpu_s']:.2f}), "
              f"off {off['wall_s']:.2f} s (run {off['run_s']:.2f}, cpu {off['cpu_s']:.2f})", file=sys.stderr, flush=True)
    return {"pairs": pairs, "load": (load_before, os.getloadavg())}


def table(results: dict, overrides: list[str]) -> str:
    pairs = results["pairs"]
    rows = []
    for label, key in (("process wall time", "wall_s"), ("run (run.json duration_s)", "run_s"),
                       ("CPU time, process tree", "cpu_s")):
        on = [p[True][key] for p in pairs]
        off = [p[False][key] for p in pairs]
        diff = statistics.median(a - b for a, b in zip(on, off))
        base = statistics.median(off)
        rows.append(f"| {label} | {statistics.median(off):.2f} | {statistics.median(on):.2f} | "
                    f"{diff:+.2f} | {diff / base:+.1%} | {min(on) - min(off):+.2f} |")
    energies = [p[True]["energy"] for p in pairs if p[True]["energy"]]
    kwh = statistics.median(e["kwh"] for e in energies) if energies else float("nan")
    co2 = statistics.median(e["kg_co2e"] for e in energies) if energies else float("nan")
    covered = statistics.median(e["duration_s"] / p[True]["run_s"] for p, e in zip(pairs, energies)) \
        if energies else float("nan")
    method = ", ".join(sorted({e["method"] for e in energies})) or "none recorded"
    (l1, l5, _), (a1, a5, _) = results["load"]
    command = " ".join(["python scripts/train.py experiment=fraud_detection logger=csv", *overrides])
    return "\n".join([
        f"`{command}`, energy.track=true vs false, {len(pairs)} pairs, alternating order; "
        f"load average {l1:.2f}/{l5:.2f} (1/5 min) before, {a1:.2f}/{a5:.2f} after, {os.cpu_count()} cores.",
        "",
        "| measured | track=false, median s | track=true, median s | paired difference, median s | "
        f"overhead (target < {TARGET:.0%}) | best-of difference, s |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Energy per run (median, track=true): {kwh:.3g} kWh, {co2:.3g} kg CO2e, {method}; "
        f"the tracker covered {covered:.0%} of the run's duration_s (it starts once it has found the hardware).",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="pairs of runs (default 5)")
    parser.add_argument("--override", action="append", default=[], help="a train.py override, repeatable")
    args = parser.parse_args()
    print(table(measure(args.repeats, args.override), args.override))


if __name__ == "__main__":
    main()
