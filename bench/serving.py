"""The model server under load, beside the bare HTTP floor and ONNX Runtime in process; batch scoring.

    python bench/serving.py --quick                  # smoke run, ~4 min: short loads, 0.5M/2M rows, nothing written
    python bench/serving.py --write                  # ~9 min on 2 cores: 6 s loads, 1M/10M rows; docs/benchmarks.md
    python bench/serving.py --parts server inprocess # skip batch scoring
    python bench/serving.py --rows 1000000,10000000 --duration 6

A small ``fraud_detection`` model (the preset's network, 2 epochs) is trained, registered,
promoted to production and exported to ONNX in a scratch ``FACTORY_ROOT``, each step through
its script, as a user would. Then, on loopback, ``wrk`` (bench/loadgen.py) keeps 1, 8 or 64
connections busy for ``--duration`` seconds (after a 1 s warm-up) against:

- the floor: a bare FastAPI/uvicorn endpoint answering a constant (httptools, uvloop, one
  worker, no access log), the cost of HTTP and the framework on this machine;
- ``scripts/serve.py`` with batching on and off (request log on, as users run it), and once
  with batching on and the log off.

The batching target (single rows at 64 connections, on >= 3x off) is judged on a second model
whose call outweighs HTTP (``bench/serving_wide.py``: ``mlp_wide`` at width 2048, ~17M
parameters): with the small fraud network the HTTP floor caps that ratio, which is printed as
information. Beside them in this process: the model through ONNX Runtime (``OnnxPredictor.predict_columns``
on 1 and 256 rows, the limit) and a loop that json-decodes the same 256-row ``/predict`` bodies
and scores them (the limit for a JSON API). Batch scoring: generated fraud Parquet files
(cached under ``--data-dir``) through ``scripts/score.py`` (a child: its own peak RSS, ``VmHWM``
polled from ``/proc``) against ONNX Runtime over the same record batches here. The load generator, the
server and everything else share the machine's cores: on 2 cores the rows/s are lower bounds.
Energy per 1,000 predictions (``kwh_per_1000``, ``energy_method`` in each load run): CodeCarbon's
tracker (``factory.training.energy``, machine mode) from before the warm-up (its start-up hides
there) to the end of the run; its mean power x the run's seconds / the rows predicted. The whole
machine counts, ``wrk`` included: an upper bound for the server alone. ``--no-energy`` skips it.
Raw results: ``outputs/bench/serving.json`` (``serving-quick.json`` for ``--quick``).
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
import urllib.request
from pathlib import Path

import loadgen
import scoring
import serving_report
from tabular import _strict, commit, write_section

from factory.training.energy import EnergyMeter

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "outputs" / "bench" / "serving.json"
NAME = "fraud_detection"
REF = f"{NAME}@production"
TRAIN = ["experiment=fraud_detection", "logger=csv", "trainer.max_epochs=2", "baseline=null"]
# (endpoint, rows per request, connections): the scenarios.
SCENARIOS = [("predict", 1, 1), ("predict", 1, 8), ("predict", 1, 64), ("v2", 1, 1), ("v2", 1, 8), ("v2", 1, 64),
             ("predict", 256, 8)]
LOG_OFF_SCENARIOS = [("predict", 1, 1), ("predict", 1, 64), ("predict", 256, 8)]
# Server runs: name -> scripts/serve.py overrides.
SERVERS = {"batching on": ["batching.enabled=true", "log.enabled=true"],
           "batching off": ["batching.enabled=false", "log.enabled=true"],
           "batching on, log off": ["batching.enabled=true", "log.enabled=false"]}
PARTS = ["server", "wide", "inprocess", "scoring"]  # wide: the batching target on a model-bound network


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 s loads, 0.5M/2M rows: a smoke run (never written)")
    p.add_argument("--duration", type=float, help="seconds per load run (default 6; --quick 2)")
    p.add_argument("--rows", help="batch-scoring sizes, comma-separated (default 1000000,10000000)")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=PARTS, help="what to measure (default: all)")
    p.add_argument("--data-dir", type=Path, default=REPO / "outputs" / "bench" / "serving-data",
                   help="generated Parquet files, kept for reruns")
    p.add_argument("--keep", action="store_true", help="keep the scratch FACTORY_ROOT (model, logs, outputs)")
    p.add_argument("--write", action="store_true", help="rewrite the Serving section of docs/benchmarks.md")
    p.add_argument("--no-energy", dest="energy", action="store_false", help="no energy per 1,000 predictions")
    p.add_argument("--country", default="USA", help="grid for the kg CO2e (ISO 3166 alpha-3; default USA)")
    args = p.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 6.0)
    args.rows = [int(r) for r in (args.rows or ("500000,2000000" if args.quick else "1000000,10000000")).split(",")]
    if args.quick and args.write:
        p.error("--quick results are a smoke check: docs/benchmarks.md takes full runs only")
    return args


def step(command: list[str], env: dict, cwd: Path, what: str) -> str:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-400:]}")
    return done.stdout


def prepare_model(root: Path, env: dict, name: str = NAME, train: list[str] = TRAIN) -> dict:
    """Train, register, promote and export the model through the scripts; its ONNX Runtime predictor."""
    if not (REPO / "scripts" / "export.py").exists():
        raise RuntimeError("scripts/export.py is missing")
    script = lambda name: [sys.executable, str(REPO / "scripts" / name)]  # noqa: E731
    start = time.perf_counter()
    ref = f"{name}@production"
    step(script("train.py") + train, env, root, "scripts/train.py")
    (run_dir,) = [p.parent for p in (root / "outputs").rglob("run.json")]
    step(script("registry.py") + ["register", str(run_dir), "--name", name], env, root, "registry register")
    step(script("registry.py") + ["promote", name, "1", "--stage", "production"], env, root, "registry promote")
    step(script("export.py") + [ref, "--format", "onnx"], env, root, "scripts/export.py --format onnx")
    from factory import registry

    loaded = registry.load(ref, env["FACTORY_REGISTRY"], backend="onnx")
    version = getattr(loaded.version, "version", loaded.version)  # a ModelVersion record, or its number
    return {"predictor": loaded.onnx, "version": version, "setup_s": time.perf_counter() - start}


def rows_for_bodies(predictor, count: int) -> list[dict]:
    """``count`` generated transactions with every feature present (JSON has no NaN for a v2 FP64 tensor)."""
    from factory.data.sources.fraud import generate_transactions

    table = generate_transactions(count * 2, 0.015, seed=7).select(predictor.features)
    rows = [r for r in table.to_pylist() if None not in r.values()]
    return rows[:count]


def v2_inputs(predictor, base: str | None = None) -> list[dict]:
    """Input names and datatypes: from the server's v2 metadata when given, else the export contract's."""
    if base:
        with urllib.request.urlopen(f"{base}/v2/models/{NAME}", timeout=10) as response:
            return [{"name": i["name"], "datatype": i["datatype"]} for i in json.load(response)["inputs"]]
    return [{"name": f, "datatype": "BYTES" if predictor.kinds[f] == "categorical" else "FP64"}
            for f in predictor.features]


def write_bodies(rows: list[dict], inputs: list[dict], workdir: Path) -> dict[tuple[str, int], Path]:
    """One JSON body per line, for each (endpoint, rows per request): 256 single-row bodies, 16 of 256 rows."""
    cast = {"FP64": float, "FP32": float, "INT64": int, "INT32": int, "BYTES": str}
    files = {}
    for size, count in ((1, 256), (256, 16)):
        groups = [rows[i:i + size] for i in range(0, size * count, size)]
        v2 = [{"inputs": [{"name": i["name"], "shape": [size], "datatype": i["datatype"],
                           "data": [cast.get(i["datatype"], lambda v: v)(r[i["name"]]) for r in g]} for i in inputs]}
              for g in groups]
        for endpoint, bodies in (("predict", [{"rows": g} for g in groups]), ("v2", v2)):
            files[endpoint, size] = workdir / f"{endpoint}-{size}.jsonl"
            files[endpoint, size].write_text("".join(json.dumps(b) + "\n" for b in bodies))
    return files


def url(base: str, endpoint: str) -> str:
    return f"{base}/predict" if endpoint == "predict" else f"{base}/v2/models/{NAME}/infer"


def load_runs(base: str, bodies: dict, scenarios: list, args: argparse.Namespace, server: str) -> list[dict]:
    out = []
    for endpoint, size, connections in scenarios:
        body, target = bodies[endpoint, size], url(base, endpoint)
        meter = EnergyMeter(args.country).start() if args.energy else None  # finds the hardware during the warm-up
        loadgen.wrk(target, body, connections=connections, duration_s=1)  # warm-up, not kept
        before = model_calls(base) if server != "floor" else None
        run = loadgen.wrk(target, body, connections=connections, duration_s=args.duration)
        run.update(server=server, endpoint=endpoint, rows_per_request=size, rows_s=run["rps"] * size,
                   **energy_per_1000(meter.stop() if meter else None, run["duration_s"], run["requests"] * size))
        after = model_calls(base) if before else None
        if before and after and after[1] > before[1]:  # the server's own count: is batching coalescing?
            run["rows_per_model_call"] = (after[0] - before[0]) / (after[1] - before[1])
        print(f"  {server:22} {endpoint:7} {size:3} rows c={connections:<3} p50 {run['p50_ms']:7.2f} ms  "
              f"p99 {run['p99_ms']:7.2f} ms  {run['rows_s']:9.0f} rows/s  non-2xx {run['non2xx']}  "
              f"rows/call {run.get('rows_per_model_call', 0):.1f}  kWh/1k {run.get('kwh_per_1000', 0):.2e}", flush=True)
        out.append(run)
    return out


def energy_per_1000(figures: dict | None, seconds: float, predictions: int) -> dict:
    """``kwh_per_1000`` (and kg CO2e) predictions: the tracker's mean power over its span x the run's seconds."""
    if not figures or figures["duration_s"] <= 0 or predictions <= 0:
        return {}
    per_prediction = seconds / figures["duration_s"] / predictions * 1000
    return {"kwh_per_1000": figures["kwh"] * per_prediction, "kg_co2e_per_1000": figures["kg_co2e"] * per_prediction,
            "energy_method": figures["method"]}


def model_calls(base: str) -> tuple[float, float] | None:
    """(rows, model calls) so far, from the server's batch-size histogram (``*batch*_sum`` / ``_count``)."""
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return None
    rows = calls = 0.0
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if "batch" in name and not line.startswith("#"):
            metric = name.split("{")[0]
            rows += float(value) if metric.endswith("_sum") else 0.0
            calls += float(value) if metric.endswith("_count") else 0.0
    return (rows, calls) if calls else None


def server_part(model: dict, root: Path, env: dict, args: argparse.Namespace) -> dict:
    predictor, workdir = model["predictor"], root / "bench"
    workdir.mkdir(exist_ok=True)
    rows = rows_for_bodies(predictor, 4096)
    bodies = write_bodies(rows, v2_inputs(predictor), workdir)
    runs, servers = [], {}
    floor, base = loadgen.floor_server(workdir)
    with floor:
        runs += load_runs(base, bodies, SCENARIOS, args, "floor")
    for name, overrides in SERVERS.items():
        port = loadgen.free_port()
        base = f"http://127.0.0.1:{port}"
        serving_dir = root / "serving" / name.replace(" ", "-").replace(",", "")
        command = [sys.executable, str(REPO / "scripts" / "serve.py"), f"model={REF}",
                   f"registry={env['FACTORY_REGISTRY']}", f"port={port}", f"serving_dir={serving_dir}", *overrides]
        server = loadgen.Process(command, f"{base}/v2/health/ready", env=env, cwd=root, log=workdir / f"{port}.log")
        with server:
            inputs = v2_inputs(predictor, base)
            if inputs != v2_inputs(predictor):
                bodies = write_bodies(rows, inputs, workdir)
            scenarios = LOG_OFF_SCENARIOS if "log off" in name else SCENARIOS
            answer_diff = check_answers(base, rows[:256], predictor)
            runs += load_runs(base, bodies, scenarios, args, name)
        exit_code = server.stop()
        logged = sum(p.stat().st_size for p in serving_dir.rglob("*.parquet")) if serving_dir.exists() else 0
        # uvicorn re-raises SIGTERM after its graceful shutdown: exit -15 with this line is a clean stop.
        clean = "Application shutdown complete" in server.log.read_text(errors="replace")
        servers[name] = {"overrides": overrides, "exit_code": exit_code, "clean_shutdown": clean,
                         "request_log_mb": round(logged / 1e6, 2), "max_score_diff": answer_diff}
    return {"runs": runs, "servers": servers, "body_rows": len(rows)}


def check_answers(base: str, rows: list[dict], predictor) -> float:
    """Max |score| difference between the server's /predict answer for ``rows`` and ONNX Runtime here."""
    request = urllib.request.Request(f"{base}/predict", json.dumps({"rows": rows}).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        served = [p["score"] for p in json.load(response)["predictions"]]
    import numpy as np

    return float(np.max(np.abs(np.asarray(served) - predictor.predict_columns(rows_to_columns(rows, predictor)))))


def timed_loop(fn, duration_s: float) -> dict:
    """Call ``fn`` repeatedly for ``duration_s`` (after 20 warm-up calls): calls/s and latency percentiles."""
    for _ in range(20):
        fn()
    times, end = [], time.perf_counter() + duration_s
    while (now := time.perf_counter()) < end:
        fn()
        times.append(time.perf_counter() - now)
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))] * 1e3  # noqa: E731
    return {"calls": len(times), "calls_s": len(times) / sum(times), "p50_ms": pick(0.5), "p99_ms": pick(0.99)}


def rows_to_columns(rows: list[dict], predictor) -> dict:
    """A /predict body's rows as ONNX Runtime's columns: what any JSON front end must do before scoring."""
    import numpy as np

    return {f: (np.array([r.get(f) or "" for r in rows], dtype=object) if predictor.kinds[f] == "categorical"
                else np.array([r.get(f) for r in rows], dtype=np.float64)) for f in predictor.features}


def inprocess_part(model: dict, args: argparse.Namespace) -> dict:
    predictor, out = model["predictor"], {}
    rows = rows_for_bodies(predictor, 4096)
    for size in (1, 256):
        columns = rows_to_columns(rows[:size], predictor)
        out[f"ort_{size}"] = {**timed_loop(lambda: predictor.predict_columns(columns), args.duration), "rows": size}
        bodies = [json.dumps({"rows": rows[i:i + size]}).encode() for i in range(0, 16 * size, size)]
        state = {"i": 0}

        def decode_and_score(bodies=bodies, state=state):
            state["i"] = (state["i"] + 1) % len(bodies)
            predictor.predict_columns(rows_to_columns(json.loads(bodies[state["i"]])["rows"], predictor))

        out[f"json_ort_{size}"] = {**timed_loop(decode_and_score, args.duration), "rows": size}
    for result in out.values():
        result["rows_s"] = result["calls_s"] * result["rows"]
    print("  in process: " + ", ".join(f"{k} {v['rows_s']:.0f} rows/s" for k, v in out.items()), flush=True)
    return out


def scoring_part(model: dict, root: Path, env: dict, args: argparse.Namespace) -> list[dict]:
    out = []
    for rows in args.rows:
        start = time.perf_counter()
        source = scoring.fraud_parquet(rows, args.data_dir)
        result = {"rows": rows, "file_mb": round(source.stat().st_size / 1e6, 1),
                  "generate_s": round(time.perf_counter() - start, 1)}
        result["inprocess"] = scoring.ort_over_file(source, model["predictor"], scoring.BATCH_ROWS)
        target = root / "scored" / str(rows)
        child = scoring.run_score(scoring.score_command(REF, Path(env["FACTORY_REGISTRY"]), source, target,
                                                        ["progress=false"]), env=env, cwd=root, timeout_s=1800)
        child.update(scoring.manifest_timing(target))
        if child["returncode"] == 0 and "rows_s" not in child:  # no timing in score.json: the whole process
            child["rows_s"], child["rows_s_from"] = rows / child["wall_s"], "wall"
        elif "rows_s" in child:
            child["rows_s_from"] = "manifest"
        shutil.rmtree(target, ignore_errors=True)
        result["score_py"] = child
        print(f"  scoring {rows:,} rows: score.py {child.get('rows_s', 0):,.0f} rows/s "
              f"(exit {child['returncode']}), peak RSS {child['peak_rss_mb']:.0f} MB; "
              f"ORT in process {result['inprocess']['rows_s']:,.0f} rows/s", flush=True)
        out.append(result)
    return out


def machine() -> str:
    import fastapi
    import onnxruntime
    import uvicorn

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    wrk = subprocess.run([loadgen.find_wrk(install=False) or "true", "--version"], capture_output=True, text=True)
    return (f"{cpu}, {os.cpu_count()} cores; onnxruntime {onnxruntime.__version__}, fastapi {fastapi.__version__}, "
            f"uvicorn {uvicorn.__version__}, {(wrk.stdout or wrk.stderr).split(' Copyright')[0].strip() or 'no wrk'}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if {"server", "wide"} & set(args.parts) and loadgen.find_wrk() is None:
        sys.exit("error: the server part needs wrk (apt-get install wrk; as root or with sudo) "
                 "or --parts inprocess scoring")
    root = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    env = {**os.environ, "FACTORY_ROOT": str(root), "FACTORY_REGISTRY": str(root / "registry")}
    env.pop("FACTORY_RUN_ID", None)
    saved = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "commit": commit(), "machine": machine(),
             "cores": os.cpu_count(), "quick": args.quick, "duration_s": args.duration, "load": [round(os.getloadavg()[0], 2)]}
    try:
        print("model: train, register, promote, export", flush=True)
        try:
            model = prepare_model(root, env)
        except (RuntimeError, ImportError, subprocess.SubprocessError) as e:  # nothing to measure without it
            saved["model"] = {"error": str(e)}
            print(f"  failed: {e}", flush=True)
            args.parts = []
        else:
            saved["model"] = {"ref": REF, "version": model["version"], "setup_s": round(model["setup_s"], 1),
                              "features": len(model["predictor"].features)}
        import serving_wide

        parts = {"server": lambda: server_part(model, root, env, args), "inprocess": lambda: inprocess_part(model, args),
                 "wide": lambda: serving_wide.wide_part(root, env, args),
                 "scoring": lambda: scoring_part(model, root, env, args)}
        for part in args.parts:
            print(f"{part}:", flush=True)
            try:
                saved[part] = parts[part]()
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:  # one part failing keeps the others
                saved[part] = {"error": str(e)}
                print(f"  {part} failed: {e}", flush=True)
    finally:
        saved["load"].append(round(os.getloadavg()[0], 2))
        print(f"scratch FACTORY_ROOT kept: {root}" if args.keep else "", end="")
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    out = RESULTS.with_name("serving-quick.json") if args.quick else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    saved["targets"] = serving_report.targets(saved)
    out.write_text(json.dumps(_strict(saved), indent=1, allow_nan=False))
    text = serving_report.render(saved)
    print(f"\n{text}\nraw results: {out}")
    if args.write and "error" in saved["model"]:
        print("docs/benchmarks.md left as it was: nothing was measured")
    elif args.write:
        write_section(text, serving_report.HEADING, serving_report.BEGIN, serving_report.END)
        print(f"wrote docs/benchmarks.md ({serving_report.HEADING.lstrip('# ')})")


if __name__ == "__main__":
    main()
