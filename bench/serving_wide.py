"""``bench/serving.py``'s ``wide`` part: the batching target on a model whose call outweighs HTTP.

With the fraud preset's network a single-row request costs the server a few hundred
microseconds of HTTP, JSON and framework work and its model call some tens: coalescing model
calls cannot gain more than the bare endpoint allows (its rows/s over batching off's, printed
beside the fraud model's ratio). Dynamic batching is for models whose call dominates, so the
issue's 3x is judged here, on ``conf/model/mlp_wide.yaml`` at width 2048 and depth 4 (~17M
parameters, ~70 MB of float32 weights, 1 epoch on 4,000 generated transactions: its accuracy is
not the point). A batch-1 call streams every weight from memory; a 64-row call costs a few
times that, not 64 times.
Same features as the fraud model, so the same request bodies; the request log on, as users run it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import loadgen
import serving

NAME = "fraud_wide"
REF = f"{NAME}@production"
TRAIN = ["experiment=fraud_detection", "model=mlp_wide", "model.net.width=2048", "model.net.depth=4",
         "data.source.rows=4000", "trainer.max_epochs=1", "baseline=null", "logger=csv"]
SCENARIOS = [("predict", 1, 1), ("predict", 1, 64)]
SERVERS = {"wide, batching on": ["batching.enabled=true", "log.enabled=true"],
           "wide, batching off": ["batching.enabled=false", "log.enabled=true"]}


def wide_part(root: Path, env: dict, args: argparse.Namespace) -> dict:
    """Train, register, export the wide model (its own FACTORY_ROOT, the same registry); load it with and
    without batching; the model call alone in process at 1 and 64 rows."""
    wide_root = root / "wide"
    wide_root.mkdir(exist_ok=True)
    wide_env = {**env, "FACTORY_ROOT": str(wide_root)}
    model = serving.prepare_model(wide_root, wide_env, name=NAME, train=TRAIN)
    predictor, workdir = model["predictor"], wide_root / "bench"
    workdir.mkdir(exist_ok=True)
    rows = serving.rows_for_bodies(predictor, 4096)
    bodies = serving.write_bodies(rows, serving.v2_inputs(predictor), workdir)
    calls = {}
    for size in (1, 64):
        columns = serving.rows_to_columns(rows[:size], predictor)
        call = lambda columns=columns: predictor.predict_columns(columns)  # noqa: E731
        calls[f"ort_{size}"] = {**serving.timed_loop(call, min(args.duration, 2.0)), "rows": size}
    print("  in process: " + ", ".join(f"{k} p50 {v['p50_ms']:.2f} ms" for k, v in calls.items()), flush=True)
    runs, servers = [], {}
    for name, overrides in SERVERS.items():
        port = loadgen.free_port()
        base = f"http://127.0.0.1:{port}"
        command = [sys.executable, str(serving.REPO / "scripts" / "serve.py"), f"model={REF}",
                   f"registry={env['FACTORY_REGISTRY']}", f"port={port}",
                   f"serving_dir={wide_root / 'serving' / name.split()[-1]}", *overrides]
        server = loadgen.Process(command, f"{base}/v2/health/ready", env=wide_env, cwd=wide_root,
                                 log=workdir / f"{port}.log")
        with server:
            runs += serving.load_runs(base, bodies, SCENARIOS, args, name)
        servers[name] = {"overrides": overrides, "exit_code": server.stop()}
    return {"ref": REF, "train": TRAIN, "setup_s": round(model["setup_s"], 1), "runs": runs, "servers": servers,
            "inprocess": calls}
