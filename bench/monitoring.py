"""Drift that can be tested: false alarms, planted drift, detection power, speed and memory of the drift monitor.

    python bench/monitoring.py --quick                 # smoke run, ~3 min: 20 windows, 0.2M/1M-row logs, nothing written
    python bench/monitoring.py --write                 # ~10 min on 2 cores (+~3 min once: the 10M-row log); docs/benchmarks.md
    python bench/monitoring.py --parts false_alarms power
    python bench/monitoring.py --quick --write --doc /tmp/benchmarks.md   # a smoke test of the writing, on a copy

The reference profile (``build_profile``) is made from the fraud generator's seed-42 table
(``--reference-rows``, 50,000; the false alarms are also measured against 7,500 rows, the size
of a ``fraud_detection`` run's validation-split profile). Every window is ``FraudSource`` traffic
of the same world (``world_seed=42``) from its own seed; window ``i`` has the same seed in every
scenario, so the columns of the power table differ by the shift alone. Scores come from a fixed
logistic function of the features (``monitoring_data.score``), not a trained model: the bench
is independent of training, and a fixed score is a function of the features as any model's is.
Each window goes through ``DriftMonitor(profile)`` at ``DEFAULT_THRESHOLDS``, ``update`` then
``result``; its outcome is the set of features it flags (and ``score``, prediction drift).

Parts (``--parts``; tables in the ``## Monitoring`` section of docs/benchmarks.md):

- ``false_alarms``: no drift, windows of 1,000 and 10,000 rows (``--windows``, 100 each).
  ``| reference rows | window rows | windows | flagged cells | share | windows with any feature
  flagged | score flagged | most flagged |``; target: cells <= 5%.
- ``planted``: ``shift={amount: 0.5}`` (amount, no other feature), ``new_category`` at 5%
  (merchant_category and merchant_id, by their unseen rates), ``fraud_rate=0.05`` (no feature:
  the labels alone move). ``| drift | window rows | expected flagged | exactly those | score
  flagged | other features flagged (windows) |``; target: exactly those in >= 95% of windows.
- ``power``: ``shift={amount: k}`` for k in ``--grid``. ``| window rows | 0 sd | 0.02 sd | ... |
  smallest at >= 95% |``: the share of windows where amount is flagged.
- ``speed``: ``--speed-rows`` (1M) logged rows (``monitoring_data.request_log``: the server's
  schema and row groups, cached under ``--data-dir``), the monitor over ``iter_batches`` against a
  raw ``pyarrow.dataset`` scan of the same columns, alternated, best of ``--repeats``; target >= 0.5x.
- ``memory``: each of ``--memory-rows`` (1M, 10M) monitored, and raw-scanned, in a fresh child
  process; ``| logged rows | pass | peak RSS MB | s | rows/s |``; target: largest within 1.2x of smallest.

Raw results: ``outputs/bench/monitoring.json`` (``monitoring-quick.json`` for ``--quick``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import monitoring_data as data
import monitoring_report as report
import scoring
import tabular
from tabular import _strict, commit, write_section

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "outputs" / "bench" / "monitoring.json"
PARTS = ["false_alarms", "planted", "power", "speed", "memory"]
SIZES = (1_000, 10_000)
SMALL_REFERENCE = 7_500  # a fraud_detection run's validation split: what its own profile holds
SEED_BASE = {1_000: 10_000, 10_000: 20_000}  # window i of a size: seed SEED_BASE + i, in every scenario
PLANTED = [("amount +0.5 sd", {"shift": {"amount": 0.5}}, ["amount"]),
           ("new merchant category, 5% of rows", {"new_category": {"share": 0.05}}, ["merchant_category", "merchant_id"]),
           ("fraud rate 1.5% -> 5%", {"fraud_rate": 0.05}, [])]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="20 windows, 0.2M/1M-row logs, best of 2: a smoke run")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=PARTS, help="what to measure (default: all)")
    p.add_argument("--windows", type=int, help="windows per size and scenario (default 100; --quick 20)")
    p.add_argument("--reference-rows", type=int, default=50_000, help="rows of the seed-42 reference table")
    p.add_argument("--grid", default="0,0.01,0.02,0.03,0.05,0.1,0.2,0.3,0.5,1.0", help="amount shifts in reference sds")
    p.add_argument("--speed-rows", type=int, help="logged rows of the speed part (default 1M; --quick 200k)")
    p.add_argument("--memory-rows", help="logged rows per memory run, comma-separated (default 1M,10M; --quick 200k,1M)")
    p.add_argument("--repeats", type=int, help="speed: best of N back-to-back pairs (default 3; --quick 2)")
    p.add_argument("--data-dir", type=Path, default=REPO / "outputs" / "bench" / "monitoring-data",
                   help="generated request logs, kept for reruns")
    p.add_argument("--write", action="store_true", help="rewrite the Monitoring section of --doc")
    p.add_argument("--doc", type=Path, default=tabular.DOC, help="the page --write rewrites (default docs/benchmarks.md)")
    args = p.parse_args(argv)
    args.windows = args.windows or (20 if args.quick else 100)
    args.grid = [float(k) for k in args.grid.split(",")]
    args.speed_rows = args.speed_rows or (200_000 if args.quick else 1_000_000)
    args.memory_rows = [int(r) for r in (args.memory_rows or ("200000,1000000" if args.quick else
                                                              "1000000,10000000")).split(",")]
    args.repeats = args.repeats or (2 if args.quick else 3)
    if args.quick and args.write and args.doc.resolve() == tabular.DOC.resolve():
        p.error("--quick results are a smoke check: docs/benchmarks.md takes full runs only (--doc a copy)")
    return args


def flagged(result: dict) -> set:
    """The names a monitor result flags: drifted features, and ``score`` for prediction drift."""
    return set(result["drifted"]) | ({report.SCORE} if result["score"]["drifted"] else set())


def run_windows(profiles: dict, size: int, windows: int, **knobs) -> dict[str, list[set]]:
    """Each of ``windows`` generated windows of ``size`` rows (``knobs`` drift) through a monitor per profile."""
    from factory.monitoring.drift import DriftMonitor

    out: dict[str, list[set]] = {name: [] for name in profiles}
    for i in range(windows):
        table = data.window(size, SEED_BASE[size] + i, **knobs)
        for name, profile in profiles.items():
            monitor = DriftMonitor(profile)
            monitor.update(table)
            out[name].append(flagged(monitor.result()))
    return out


def false_alarms_part(profiles: dict, args: argparse.Namespace, cache: dict) -> dict:
    features, rows = list(data.kinds()), []
    for size in SIZES:
        outcomes = run_windows(profiles, size, args.windows)
        cache[size, 0.0] = outcomes["reference"]  # the power table's 0 sd column
        for name, sets in outcomes.items():
            row = {"reference_rows": profiles[name].rows, "window_rows": size, "windows": len(sets),
                   "cells": len(sets) * len(features), "flagged_cells": sum(len(s & set(features)) for s in sets),
                   "cell_share": report.cell_share(sets, features), "any_share": report.any_share(sets, features),
                   "score_share": report.share(sets, report.SCORE), "by_name": report.by_name(sets)}
            print(f"  reference {row['reference_rows']:,}, windows of {size:,}: {row['flagged_cells']}/{row['cells']} "
                  f"cells ({row['cell_share']:.1%}), any feature {row['any_share']:.0%}, score {row['score_share']:.0%}"
                  f"  {row['by_name']}", flush=True)
            rows.append(row)
    return {"rows": rows}


def planted_part(profiles: dict, args: argparse.Namespace, cache: dict) -> dict:
    features, rows = list(data.kinds()), []
    for scenario, knobs, expected in PLANTED:
        for size in SIZES:
            key = (size, knobs["shift"]["amount"]) if list(knobs) == ["shift"] else None
            sets = cache.get(key) or run_windows({"reference": profiles["reference"]}, size, args.windows,
                                                 **knobs)["reference"]
            if key:
                cache[key] = sets
            others = {k: v for k, v in report.by_name(sets).items() if k not in expected and k != report.SCORE}
            row = {"scenario": scenario, "knobs": knobs, "window_rows": size, "windows": len(sets),
                   "expected": expected, "only_share": report.only_share(sets, set(expected), features),
                   "expected_share": {e: report.share(sets, e) for e in expected},
                   "score_share": report.share(sets, report.SCORE), "others": others}
            print(f"  {scenario}, windows of {size:,}: exactly {expected or 'none'} in {row['only_share']:.0%}, "
                  f"score {row['score_share']:.0%}, others {others}", flush=True)
            rows.append(row)
    return {"rows": rows}


def power_part(profiles: dict, args: argparse.Namespace, cache: dict) -> dict:
    shares, smallest = {}, {}
    for size in SIZES:
        shares[size] = []
        for k in args.grid:
            if (size, k) not in cache:
                knobs = {"shift": {"amount": k}} if k else {}
                cache[size, k] = run_windows({"reference": profiles["reference"]}, size, args.windows,
                                             **knobs)["reference"]
            shares[size].append(report.share(cache[size, k], "amount"))
        smallest[size] = report.smallest_detected(args.grid, shares[size])
        print(f"  windows of {size:,}: " + ", ".join(f"{k:g} sd {s:.0%}" for k, s in zip(args.grid, shares[size]))
              + f"; smallest at >= 95%: {smallest[size]}", flush=True)
    return {"grid": args.grid, "windows": args.windows, "shares": shares, "smallest": smallest}


def speed_part(profiles: dict, args: argparse.Namespace) -> dict:
    import pyarrow.parquet as pq

    from factory.monitoring.window import source_files

    log = data.request_log(args.speed_rows, args.data_dir)
    files = source_files(log)
    profile = profiles["reference"]
    columns = [*profile.features, report.SCORE]
    data.scan(log, columns), data.scan(log, columns, monitor_profile=profile)  # warm-up: imports, page cache
    raw, monitor, by_file = [], [], []
    for _ in range(args.repeats):
        raw.append(data.scan(log, columns))
        monitor.append(data.scan(log, columns, monitor_profile=profile))
        by_file.append(data.scan(log, columns, files=True))
        print(f"  raw scan {raw[-1]['rows_s']:,.0f} rows/s, monitor {monitor[-1]['rows_s']:,.0f} rows/s, "
              f"ParquetFile by file {by_file[-1]['rows_s']:,.0f} rows/s", flush=True)
    best_raw, best_monitor = max(r["rows_s"] for r in raw), max(r["rows_s"] for r in monitor)
    return {"rows": args.speed_rows, "files": len(files), "columns": columns, "flush_rows": data.FLUSH_ROWS,
            "row_groups": sum(pq.ParquetFile(f).num_row_groups for f in files), "repeats": args.repeats,
            "raw": raw, "monitor": monitor, "raw_rows_s": best_raw, "monitor_rows_s": best_monitor,
            "ratio": best_monitor / best_raw, "drifted": monitor[-1]["drifted"], "files_scan": by_file,
            "files_rows_s": max(r["rows_s"] for r in by_file)}


def memory_part(profiles: dict, args: argparse.Namespace, scratch: Path) -> dict:
    profile_dir = scratch / "profile"
    profiles["reference"].save(profile_dir)
    runs = []
    for rows in args.memory_rows:
        log = data.request_log(rows, args.data_dir)
        for mode in ("monitor", "raw", "files"):
            command = [sys.executable, str(Path(data.__file__).resolve()), mode, str(log), str(profile_dir)]
            child = scoring.run_score(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=REPO, timeout_s=1800)
            child["wait4_maxrss_mb"] = child.pop("peak_rss_mb")  # a floor: this process's peak at the spawn
            try:
                child.update(json.loads(child["tail"].split(" | ")[-1]))
            except ValueError:
                child["error"] = child["tail"]
            child["peak_rss_mb"] = child.get("vmhwm_mb") or child["wait4_maxrss_mb"]
            runs.append({"rows": rows, "mode": mode, **child})
            print(f"  {rows:,} rows, {mode}: peak RSS {child['peak_rss_mb']:.0f} MB, {child['wall_s']:.1f} s "
                  f"(exit {child['returncode']})", flush=True)
    return {"runs": runs}


def machine() -> str:
    import numpy
    import pyarrow
    import scipy

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    return (f"{cpu}, {os.cpu_count()} cores; pyarrow {pyarrow.__version__}, scipy {scipy.__version__}, "
            f"numpy {numpy.__version__}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    saved = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "commit": commit(), "machine": machine(),
             "cores": os.cpu_count(), "quick": args.quick, "windows": args.windows,
             "reference_rows": args.reference_rows, "load": [round(os.getloadavg()[0], 2)],
             "score": "a fixed logistic function of the features (`bench/monitoring_data.py`), no trained model"}
    scratch = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    cache: dict = {}
    try:
        start = time.perf_counter()
        profiles = {"reference": data.reference(args.reference_rows)}
        if "false_alarms" in args.parts:
            profiles["small"] = data.reference(SMALL_REFERENCE)
        print(f"reference profile(s): {time.perf_counter() - start:.1f} s", flush=True)
        parts = {"false_alarms": lambda: false_alarms_part(profiles, args, cache),
                 "planted": lambda: planted_part(profiles, args, cache),
                 "power": lambda: power_part(profiles, args, cache),
                 "speed": lambda: speed_part(profiles, args), "memory": lambda: memory_part(profiles, args, scratch)}
        for part in PARTS:
            if part not in args.parts:
                continue
            print(f"{part}:", flush=True)
            start = time.perf_counter()
            try:
                saved[part] = parts[part]()
            except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:  # the others still run
                saved[part] = {"error": f"{type(e).__name__}: {e}"}
                print(f"  {part} failed: {e}", flush=True)
            saved[part]["seconds"] = round(time.perf_counter() - start, 1)
    finally:
        saved["load"].append(round(os.getloadavg()[0], 2))
        shutil.rmtree(scratch, ignore_errors=True)
    out = RESULTS.with_name("monitoring-quick.json") if args.quick else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    saved["targets"] = report.targets(saved)
    out.write_text(json.dumps(_strict(saved), indent=1, allow_nan=False))
    text = report.render(saved)
    print(f"\n{text}\nraw results: {out}")
    if args.write:
        tabular.DOC = args.doc  # write_section writes tabular.DOC
        write_section(text, report.HEADING, report.BEGIN, report.END)
        print(f"wrote {args.doc} ({report.HEADING.lstrip('# ')})")


if __name__ == "__main__":
    main()
