"""One target of bench/serving.py, quickly: 256-row ``/predict`` at 8 connections against the in-process JSON limit.

    python bench/serving_256.py                      # ~1.5 min: train once, then the servers below
    python bench/serving_256.py --root /tmp/b256     # keep (and reuse) the trained model there
    python bench/serving_256.py --servers "batching on" --duration 4

The issue's target: 256-row requests at concurrency 8 reach at least half the rows/s of an
in-process loop that json-decodes the same bodies and scores them with ONNX Runtime. Each
server run (``wrk``, 1 s warm-up, then ``--duration`` s) sits between two in-process loops
of half ``--duration`` s, and its ratio is taken against their mean: on a busy machine the
ratio, not the rows/s, is what compares; the server's CPU time per request (all its threads,
from ``/proc``) beside the loop's is steadier still. Servers as in bench/serving.py (``SERVERS``). Prints
one line per server; writes nothing outside the scratch root.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import loadgen
import serving


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=4.0, help="seconds per load run and per in-process loop")
    p.add_argument("--servers", nargs="+", choices=list(serving.SERVERS), default=list(serving.SERVERS))
    p.add_argument("--root", type=Path, help="scratch FACTORY_ROOT kept between runs (the model is trained once)")
    args = p.parse_args(argv)
    if loadgen.find_wrk() is None:
        sys.exit("error: needs wrk (apt-get install wrk)")
    root = args.root or Path(tempfile.mkdtemp(prefix="bench-serving-256-"))
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FACTORY_ROOT": str(root), "FACTORY_REGISTRY": str(root / "registry")}
    env.pop("FACTORY_RUN_ID", None)
    try:
        if (root / "registry").is_dir():
            from factory import registry

            loaded = registry.load(serving.REF, env["FACTORY_REGISTRY"], backend="onnx")
            model = {"predictor": loaded.onnx}
        else:
            model = serving.prepare_model(root, env)
        predictor, workdir = model["predictor"], root / "bench"
        workdir.mkdir(exist_ok=True)
        rows = serving.rows_for_bodies(predictor, 4096)
        bodies = serving.write_bodies(rows, serving.v2_inputs(predictor), workdir)

        bodies_256 = [json.dumps({"rows": rows[i:i + 256]}).encode() for i in range(0, 16 * 256, 256)]

        def inprocess() -> tuple[float, float]:
            """rows/s of the JSON limit (bench/serving.py's json_ort_256 loop), and its CPU ms per call."""
            state = {"i": 0}

            def decode_and_score():
                state["i"] = (state["i"] + 1) % len(bodies_256)
                predictor.predict_columns(serving.rows_to_columns(json.loads(bodies_256[state["i"]])["rows"],
                                                                  predictor))

            cpu = time.process_time()
            result = serving.timed_loop(decode_and_score, args.duration / 2)
            cpu = time.process_time() - cpu
            return result["calls_s"] * 256, cpu / (result["calls"] + 20) * 1e3

        for name in args.servers:
            port = loadgen.free_port()
            base = f"http://127.0.0.1:{port}"
            serving_dir = root / "serving" / name.replace(" ", "-").replace(",", "")
            shutil.rmtree(serving_dir, ignore_errors=True)
            command = [sys.executable, str(serving.REPO / "scripts" / "serve.py"), f"model={serving.REF}",
                       f"registry={env['FACTORY_REGISTRY']}", f"port={port}", f"serving_dir={serving_dir}",
                       *serving.SERVERS[name]]
            before = inprocess()
            with loadgen.Process(command, f"{base}/v2/health/ready", env=env, cwd=root,
                                 log=workdir / f"{port}.log") as server:
                diff = serving.check_answers(base, rows[:256], predictor)
                target = serving.url(base, "predict")
                loadgen.wrk(target, bodies["predict", 256], connections=8, duration_s=1)
                cpu = cpu_s(server.proc.pid)
                run = loadgen.wrk(target, bodies["predict", 256], connections=8, duration_s=args.duration)
                cpu = (cpu_s(server.proc.pid) - cpu) / max(run["requests"], 1) * 1e3
            after = inprocess()
            rows_s, limit = run["rps"] * 256, (before[0] + after[0]) / 2
            print(f"{name:22} {rows_s:9,.0f} rows/s  p50 {run['p50_ms']:6.2f} ms  errors "
                  f"{run['non2xx'] + run['socket_errors']}  in process {before[0]:9,.0f} / {after[0]:9,.0f}  "
                  f"ratio {rows_s / limit:.2f}x  CPU ms per request: server {cpu:.2f}, in process "
                  f"{(before[1] + after[1]) / 2:.2f}  (score diff {diff:.1e}; load {os.getloadavg()[0]:.1f})",
                  flush=True)
            time.sleep(0.5)
    finally:
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
