"""What ZeRO's sharding saves on this machine: peak memory per rank, where it goes, samples/s.

    python bench/sharding.py                                 # all strategies, 2 and 4 ranks; rewrites
                                                             # the Sharding section of docs/benchmarks.md
    python bench/sharding.py --ranks 2 --strategies ddp deepspeed_zero3 --steps 4 --no-write
    python bench/sharding.py --ranks 2 --strategies deepspeed_zero3 \\
        --override strategy.reduce_bucket_size=2e7          # price one knob (never written to the doc)
    python bench/sharding.py --from-json outputs/bench/sharding.json   # re-render saved results

Each configuration is one ``scripts/train.py`` run of the 151M-parameter MLP (``MODEL``) on
CPU processes with ``bench/memory_probe.py``'s callback injected: a few optimizer steps,
no validation, test or checkpoint (the probe drops Lightning's default one). The probe
writes, per rank, RSS and peak RSS at each milestone (setup, model built, engine built,
first forward, backward, step, the remaining steps), live tensor bytes by owner, and step
times. Beside them go the planner's predictions (``factory.distributed.planner.make_plan``)
for the same config; ``--from-json`` recomputes those with the planner as it is now.

Runs go one at a time (memory is what is measured) and wait for free memory first. With
more ranks than cores the processes take turns on the CPUs: samples/s then says little.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from sharding_report import render, write_section  # noqa: E402

STRATEGIES = ["ddp", "deepspeed_zero1", "deepspeed_zero2", "deepspeed_zero3", "deepspeed_zero3_offload"]
MODEL = ["model=mlp_wide", "model.net.width=4096", "model.net.depth=10"]  # 151,289,761 parameters
SETTINGS = ["trainer.accelerator=cpu", "logger=csv", "callbacks=none", "trainer.limit_val_batches=0", "test=false",
            "data.source.rows=20000", "trainer.enable_progress_bar=false", "plan.check=false"]
PROBE = "+callbacks.memprobe._target_=memory_probe.MemoryProbe"
RESULTS = REPO / "outputs" / "bench" / "sharding.json"
GB = 1e9


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[2, 4], help="processes per run")
    p.add_argument("--strategies", nargs="+", default=STRATEGIES, help="conf/strategy options")
    p.add_argument("--steps", type=int, default=4, help="optimizer steps per run (the first is warm-up)")
    p.add_argument("--batch-size", type=int, default=256, help="rows per rank and step")
    p.add_argument("--override", action="append", default=[], help="extra train.py override, every run")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per run")
    p.add_argument("--from-json", type=Path, help="render saved results (re-planned) instead of running")
    p.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    return p.parse_args(argv)


def overrides(strategy: str, ranks: int, args: argparse.Namespace) -> list[str]:
    """The ``scripts/train.py`` overrides of one configuration (probe excluded)."""
    return [*MODEL, f"strategy={strategy}", f"trainer.devices={ranks}", f"trainer.max_steps={args.steps}",
            f"data.batch_size={args.batch_size}", *SETTINGS, *args.override]


def available_gb() -> float:
    """``MemAvailable`` from /proc/meminfo, in GB."""
    line = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemAvailable"))
    return int(line.split()[1]) * 1024 / GB


def wait_for_memory(need_gb: float, patience_s: float = 900) -> bool:
    """Wait until ``need_gb`` is available (others share the machine); False after ``patience_s``."""
    deadline = time.monotonic() + patience_s
    while available_gb() < need_gb:
        if time.monotonic() > deadline:
            return False
        print(f"  waiting: {available_gb():.1f} GB available, {need_gb:.0f} GB wanted", flush=True)
        time.sleep(30)
    return True


def run_one(strategy: str, ranks: int, args: argparse.Namespace, planned_gb: float) -> dict:
    """Train one configuration; returns per-rank probe records, wall time and exit status.

    Waits for ``ranks`` x (the plan + 0.7 GB of process baseline) + 2 GB to be free first,
    and at least 15 GB for 4 ranks or more.
    """
    need = max(15.0 if ranks >= 4 else 6.0, ranks * (planned_gb + 0.7) + 2)
    if not wait_for_memory(need):
        return {"error": f"less than {need:.0f} GB available", "wall_s": 0}
    with tempfile.TemporaryDirectory(prefix="sharding-") as tmp:
        env = dict(os.environ, MEMPROBE_DIR=f"{tmp}/probe", FACTORY_ROOT=tmp, WANDB_MODE="offline",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "bench"), os.environ.get("PYTHONPATH")])))
        env.pop("FACTORY_RUN_ID", None)
        start = time.monotonic()
        try:
            done = subprocess.run([sys.executable, "scripts/train.py", *overrides(strategy, ranks, args), PROBE],
                                  cwd=REPO, env=env, capture_output=True, text=True, timeout=args.timeout)
            code, tail = done.returncode, done.stderr[-1500:]
        except subprocess.TimeoutExpired:
            code, tail = -1, f"timed out after {args.timeout} s"
        wall = time.monotonic() - start
        ranks_seen = sorted(Path(tmp, "probe").glob("rank*.json"))
        records = [json.loads(p.read_text()) for p in ranks_seen]
    result = {"wall_s": round(wall, 1), "returncode": code, "per_rank": records}
    if code != 0 or len(records) != ranks:
        result["error"] = tail.strip().splitlines()[-1] if tail.strip() else f"exit {code}"
    return result


def predict(strategy: str, ranks: int, args: argparse.Namespace) -> dict:
    """The planner's per-process bytes for the same config: ``make_plan``'s configured row."""
    from factory.config.instantiate import build
    from factory.config import compose

    cfg = compose("train", overrides(strategy, ranks, args))
    datamodule = build(cfg.data, "data")
    datamodule.setup("fit")
    from factory.distributed.planner import make_plan

    plan = make_plan(cfg, datamodule.input_spec, args.batch_size)
    e = plan.chosen
    return {"params": e.params, "grads": e.grads, "optimizer": e.optimizer, "activations": e.activations,
            "buffers": e.buffers, "host": e.host, "total": plan.budget.need(e), "n_params": plan.model.params}


def machine() -> str:
    """CPU, cores, RAM, versions: one line for the results header."""
    import deepspeed
    import pytorch_lightning
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    ram = int(Path("/proc/meminfo").read_text().split()[1]) * 1024 / GB
    return (f"{cpu}, {os.cpu_count()} cores, {ram:.0f} GB RAM; torch {torch.__version__}, pytorch-lightning "
            f"{pytorch_lightning.__version__}, deepspeed {deepspeed.__version__}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.from_json:  # measurements as saved; predictions from the planner as it is now
        saved = json.loads(args.from_json.read_text())
        replan = argparse.Namespace(**{**vars(args), "steps": saved["steps"], "batch_size": saved["batch_size"],
                                       "override": saved["overrides"]})
        for run in saved["runs"]:
            run["planned"] = predict(run["strategy"], run["ranks"], replan)
    else:
        saved = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "steps": args.steps,
                 "batch_size": args.batch_size, "overrides": args.override, "load": [os.getloadavg()[0]],
                 "runs": []}
        for ranks in args.ranks:
            for strategy in args.strategies:
                print(f"{strategy} x {ranks} ranks ...", flush=True)
                planned = predict(strategy, ranks, args)
                run = {"strategy": strategy, "ranks": ranks, "planned": planned,
                       **run_one(strategy, ranks, args, planned["total"] / GB)}
                saved["runs"].append(run)
                print(f"  {run.get('error') or 'ok'} ({run['wall_s']} s)", flush=True)
        saved["load"].append(os.getloadavg()[0])
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        out = RESULTS if not args.override else RESULTS.with_name(f"sharding-{time.strftime('%H%M%S')}.json")
        out.write_text(json.dumps(saved, indent=1))
        print(f"raw results: {out.relative_to(REPO)}")
    text = render(saved)
    print(text)
    if not args.no_write and not saved["overrides"]:  # a priced knob is not the baseline result
        write_section(text)
        print("wrote docs/benchmarks.md (## Sharding)")


if __name__ == "__main__":
    main()
